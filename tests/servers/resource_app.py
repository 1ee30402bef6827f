"""A Flask app whose "connection" is a cfg.resource, read at import too (as apps do at startup,
in the master before the fork). Each close is appended to $CLOSE_LOG as a JSON line, so a test
sees which process closed which object, and when."""

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass

from flask import Flask, jsonify, request

from hotconf import Config
from hotconf.integrations.flask import HotConf

logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")
cfg = Config(namespaces=["application"])
CLOSE_LOG = os.environ["CLOSE_LOG"]
BUILD_LOG = CLOSE_LOG + ".builds"
FACTORY_SLEEP = float(os.environ.get("FACTORY_SLEEP", "0"))


class Connection:
    def __init__(self, url, password):
        if "://" not in url:  # as a driver would, quoting what it was given
            raise ValueError(f"cannot parse {url!r} as a database URL (password {password!r})")
        time.sleep(FACTORY_SLEEP)  # a driver's connect (a greenlet switch under gevent)
        self.url, self.id, self.pid, self.built_at = url, uuid.uuid4().hex[:8], os.getpid(), time.time()
        with open(BUILD_LOG, "a") as out:
            out.write(json.dumps({"pid": self.pid, "id": self.id, "url": url}) + "\n")

    def __del__(self):  # a driver's finalizer talks on the socket (psycopg2 sends Terminate)
        with open(CLOSE_LOG + ".dels", "a") as out:
            out.write(json.dumps({"by": os.getpid(), "id": self.id, "pid": self.pid}) + "\n")

    def close(self):
        with open(CLOSE_LOG, "a") as out:
            out.write(json.dumps({"by": os.getpid(), "id": self.id, "pid": self.pid,
                                  "url": self.url, "at": time.time()}) + "\n")


@dataclass
class Limits:
    timeout: float = 1.0
    retries: int = 3


db = cfg.resource(lambda c: Connection(c.get("db.url"), c.get("db.password")), keys=["db.*"], name="db",
                  grace=float(os.environ.get("GRACE", "1.0")), settle=0.2)
AT_IMPORT = db().id  # built in the master (uWSGI prefork, gunicorn --preload)
limits = cfg.bind(Limits, prefix="limits")

app = Flask(__name__)
HotConf(app, cfg)


@app.get("/")
def index():
    time.sleep(float(request.args.get("sleep", "0")))  # lets a test reach every worker
    with db.use() as conn:
        return jsonify(pid=os.getpid(), conn=conn.id, conn_pid=conn.pid, url=conn.url,
                       built_at=conn.built_at, at_import=AT_IMPORT, config_url=cfg.get("db.url"),
                       timeout=limits.timeout, retries=limits.retries)


@app.get("/limits")
def limits_only():
    """Reads a bound model only: no cfg.get, no resource (the request check arms the worker)."""
    return jsonify(pid=os.getpid(), timeout=limits.timeout)
