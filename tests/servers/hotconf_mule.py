"""A uWSGI script mule: the host's poller."""

import flask_app

from hotconf.integrations.uwsgi import run_mule

run_mule(flask_app.cfg)
