"""A Flask app that reads its config from Apollo through hotconf, written the obvious way:
one module-level Config, read in the views. Nothing here knows it runs under uWSGI.

APP_ID, APOLLO_META (or APOLLO_CONFIG_SERVICE) and APOLLO_CACHE_DIR come from the environment.
"""

import logging
import os
import time

from flask import Flask, jsonify, request

from hotconf import Config
from hotconf.integrations.flask import HotConf

logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")

cfg = Config(namespaces=["application"])

app = Flask(__name__)
HotConf(app, cfg)  # a cheap freshness check at the start of each request


@app.get("/")
def index():
    # ?sleep=0.2 keeps this worker busy a moment, so concurrent requests reach every worker
    time.sleep(min(float(request.args.get("sleep", "0")), 1.0))
    return jsonify(pid=os.getpid(), greeting=cfg.get("greeting", "(not set)"), role=cfg.role)
