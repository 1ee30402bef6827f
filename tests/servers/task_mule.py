"""An app's own task mule: it reads the config, and is not hotconf's poller."""

import time

import flask_app

while True:
    flask_app.cfg.get("greeting")
    time.sleep(0.5)
