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

# db.* is baked into the connection below: when a release changes it, hotconf reloads uWSGI
# (once, gracefully, from the mule) so every worker is rebuilt with the new value.
cfg = Config(namespaces=["application"], reload_on=["db.*"])


class Database:
    """Stands for a connection pool (a SQLAlchemy engine, a redis.Redis): built once, at import,
    from db.url, and rebuilt only when the server reloads."""

    def __init__(self, url: str):
        self.url = url
        self.id = uuid.uuid4().hex[:6]


db = Database(cfg.get("db.url", "sqlite:///:memory:"))

app = Flask(__name__)
HotConf(app, cfg)  # a cheap freshness check at the start of each request


@app.get("/")
def index():
    # ?sleep=0.2 keeps this worker busy a moment, so concurrent requests reach every worker
    time.sleep(min(float(request.args.get("sleep", "0")), 1.0))
    return jsonify(pid=os.getpid(), greeting=cfg.get("greeting", "(not set)"), role=cfg.role,
                   db_url=db.url, connection=db.id)
