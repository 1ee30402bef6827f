"""The same Flask app as examples/uwsgi: one module-level Config, read in the views."""

import logging
import os
import time

from flask import Flask, jsonify, request

from hotconf import Config
from hotconf.integrations.flask import HotConf

logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")

cfg = Config(namespaces=["application"])  # APP_ID, APOLLO_META from the environment
app = Flask(__name__)
HotConf(app, cfg)


@app.get("/")
def index():
    # ?sleep=0.2 keeps this worker busy a moment, so concurrent requests reach every worker
    time.sleep(min(float(request.args.get("sleep", "0")), 1.0))
    return jsonify(pid=os.getpid(), greeting=cfg.get("greeting", "(not set)"), role=cfg.role)
