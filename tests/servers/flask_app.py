"""The seed scenario, written the obvious way: a module-level Config, read at import and in a
view. APP_ID, APOLLO_META and APOLLO_CACHE_DIR come from the environment."""

import logging
import os
import time

from flask import Flask, jsonify, request

from hotconf import Config
from hotconf.integrations.flask import HotConf

logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")
cfg = Config(namespaces=["application"])
# Many apps read settings at import, in the master before the fork; some never do.
GREETING_AT_IMPORT = cfg.get("greeting") if os.environ.get("READ_AT_IMPORT", "1") == "1" else None

app = Flask(__name__)
HotConf(app, cfg)
changes = []
cfg.on_change(lambda event: changes.append(event.release_key))


@app.get("/")
def index():
    time.sleep(float(request.args.get("sleep", "0")))  # lets a test reach every worker
    return jsonify(pid=os.getpid(), greeting=cfg.get("greeting"), role=cfg.role,
                   events=len(changes), at_import=GREETING_AT_IMPORT, signal=uwsgi_signal())


def uwsgi_signal():
    try:
        from hotconf.integrations import uwsgi as integration
    except ImportError:
        return None
    return integration.signal_number()
