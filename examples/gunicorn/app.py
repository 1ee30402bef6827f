"""The same Flask app as examples/uwsgi: one module-level Config, read in the views."""

import logging
import os
import time
import uuid

from flask import Flask, jsonify, request

from hotconf import Config
from hotconf.integrations.flask import HotConf

logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")

cfg = Config(namespaces=["application"])  # APP_ID, APOLLO_META from the environment


class Database:
    """Stands for a connection pool (a SQLAlchemy engine, a redis.Redis) built from db.url."""

    def __init__(self, url: str):
        if "://" not in url:
            raise ValueError(f"db.url {url!r} is not a URL (scheme://host/db)")
        self.url, self.id, self.pid = url, uuid.uuid4().hex[:6], os.getpid()

    def close(self) -> None:
        logging.getLogger("app").info("connection %s to %s closed", self.id, self.url)


# Built in each worker at its first use, even with preload_app (never the arbiter's, shared by
# every worker), and rebuilt in every worker when a release changes db.*: no HUP needed.
db = cfg.resource(lambda c: Database(c.get("db.url", "sqlite:///:memory:")), keys=["db.*"],
                  name="db")
app = Flask(__name__)
HotConf(app, cfg)


@app.get("/")
def index():
    # ?sleep=0.2 keeps this worker busy a moment, so concurrent requests reach every worker
    time.sleep(min(float(request.args.get("sleep", "0")), 1.0))
    conn = db()
    return jsonify(pid=os.getpid(), greeting=cfg.get("greeting", "(not set)"), role=cfg.role,
                   db_url=conn.url, connection=conn.id, connection_pid=conn.pid)
