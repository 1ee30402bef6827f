"""hotconf under uWSGI, as a user writes it: a module-level Config read in the views."""

import json
import os
import tempfile
import uuid
from dataclasses import dataclass

from common import KEY, read_costs, record_swap
from flask import Flask, jsonify, request

from hotconf import Config

NAMESPACES = os.environ.get("BENCH_NAMESPACES", "application").split(",")
RELOAD_ON = [p for p in os.environ.get("BENCH_RELOAD_ON", "").split(",") if p]
cfg = Config(namespaces=NAMESPACES, reload_on=RELOAD_ON, reload_wait=(0.5, 2.0))
cfg.on_change(lambda event: record_swap(event.release_key))



class Connection:
    """Stands for a connection pool built from db.url (BENCH_REBUILD=1: a cfg.resource)."""

    def __init__(self, url):
        self.url, self.id = url, uuid.uuid4().hex[:8]


@dataclass
class Limits:
    timeout: float = 1.0


if os.environ.get("BENCH_REBUILD") == "1":
    conn = cfg.resource(lambda c: Connection(c.get("db.url", "none", namespace=NAMESPACES[0])),
                        keys=["db.*"], settle=0.2, grace=2.0)
    limits = cfg.bind(Limits, namespace=NAMESPACES[0], prefix="limits")
else:  # built once, at import (in the master before the fork): only a reload replaces it
    _at_import = Connection(cfg.get("db.url", "none", namespace=NAMESPACES[0]))
    conn = lambda: _at_import  # noqa: E731

app = Flask(__name__)
_flat_file = os.path.join(tempfile.gettempdir(), f"hotconf-bench-flat-{os.getpid()}.json")


@app.get("/")
def index():
    c = conn()
    return jsonify(pid=os.getpid(), value=cfg.get(KEY, namespace=NAMESPACES[0]), db=c.url,
                   conn=c.id)


@app.get("/bench/read")
def bench_read():
    n = int(request.args.get("n", "100000"))
    if not os.path.exists(_flat_file):
        with open(_flat_file, "w") as fh:  # what the file-read workaround reads per call
            json.dump(dict(cfg.namespace(NAMESPACES[0])), fh)
    return jsonify(read_costs(lambda: cfg.get(KEY, namespace=NAMESPACES[0]), n, _flat_file))
