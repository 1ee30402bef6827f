"""A Flask app that reads its config from Apollo through hotconf, written the obvious way:
one module-level Config, read in the views. Nothing here knows it runs under uWSGI.

APP_ID, APOLLO_META (or APOLLO_CONFIG_SERVICE) and APOLLO_CACHE_DIR come from the environment.
"""

import logging
import os
import time
import uuid

from flask import Flask, jsonify, request

from hotconf import Config
from hotconf.integrations.flask import HotConf

logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")

# The banner is read once, at import (as a framework reads its settings): only a reload
# applies a new one, so it is named in reload_on and hotconf reloads uWSGI (once, gracefully,
# from the mule) when a release changes it.
cfg = Config(namespaces=["application"], reload_on=["banner"])
BANNER = cfg.get("banner", "welcome")


class Database:
    """Stands for a connection pool (a SQLAlchemy engine, a redis.Redis) built from db.url."""

    def __init__(self, url: str):
        if "://" not in url:  # what a driver does with a URL it cannot use
            raise ValueError(f"db.url {url!r} is not a URL (scheme://host/db)")
        self.url = url
        self.id = uuid.uuid4().hex[:6]
        self.pid = os.getpid()

    def close(self) -> None:
        logging.getLogger("app").info("connection %s to %s closed", self.id, self.url)


# Each worker builds its own connection at its first request (never the master's, shared by
# all), and a release that changes db.* builds a new one in every worker, without a reload.
# A db.url the factory rejects keeps the old connection (see `hotconf status`).
db = cfg.resource(lambda c: Database(c.get("db.url", "sqlite:///:memory:")), keys=["db.*"],
                  grace=5.0, name="db")

app = Flask(__name__)
HotConf(app, cfg)  # a cheap freshness check at the start of each request


@app.get("/")
def index():
    # ?sleep=0.2 keeps this worker busy a moment, so concurrent requests reach every worker
    time.sleep(min(float(request.args.get("sleep", "0")), 1.0))
    conn = db()
    return jsonify(pid=os.getpid(), greeting=cfg.get("greeting", "(not set)"), role=cfg.role,
                   db_url=conn.url, connection=conn.id, connection_pid=conn.pid, banner=BANNER,
                   config_db_url=cfg.get("db.url"))
