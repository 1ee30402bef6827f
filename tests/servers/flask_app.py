"""The seed scenario, written the obvious way: a module-level Config, read at import and in a
view. APP_ID, APOLLO_META and APOLLO_CACHE_DIR come from the environment."""

import logging
import os
import time
import uuid

from flask import Flask, jsonify, request

from hotconf import Config
from hotconf.integrations.flask import HotConf

logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")
RELOAD_ON = [p for p in os.environ.get("RELOAD_ON", "db.*").split(",") if p]
cfg = Config(namespaces=["application"], reload_on=RELOAD_ON, reload_wait=(1.0, 4.0),
             reload_min_interval=2.0)
# Many apps read settings at import, in the master before the fork; some never do.
GREETING_AT_IMPORT = cfg.get("greeting") if os.environ.get("READ_AT_IMPORT", "1") == "1" else None



class Connection:
    """Stands for a database engine: built once from db.url, rebuilt only by a reload."""

    def __init__(self, url):
        self.url, self.id = url, uuid.uuid4().hex[:8]


connection = Connection(cfg.get("db.url")) if GREETING_AT_IMPORT is not None else None

PART_READS: dict = {}  # namespace -> parts this process read from the shared store
if os.environ.get("COUNT_PART_READS") == "1":
    from hotconf.snapshot import Snapshot

    _decode = Snapshot.decode.__func__  # type: ignore[attr-defined]

    def _counting_decode(cls, data, read_part, *args, **kwargs):
        def counted(name, digest):
            PART_READS[name] = PART_READS.get(name, 0) + 1
            return read_part(name, digest)

        return _decode(cls, data, counted, *args, **kwargs)

    Snapshot.decode = classmethod(_counting_decode)

app = Flask(__name__)
HotConf(app, cfg, metrics_path="/metrics")
changes = []
cfg.on_change(lambda event: changes.append(event.release_key))


@app.get("/")
def index():
    time.sleep(float(request.args.get("sleep", "0")))  # lets a test reach every worker
    global connection
    if connection is None:
        connection = Connection(cfg.get("db.url"))
    return jsonify(pid=os.getpid(), greeting=cfg.get("greeting"), role=cfg.role,
                   events=len(changes), at_import=GREETING_AT_IMPORT, signal=uwsgi_signal(),
                   db=connection.url, conn=connection.id, part_reads=PART_READS)


def uwsgi_signal():
    from hotconf.servers.uwsgi import PUSH

    return PUSH.number
