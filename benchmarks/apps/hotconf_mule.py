import hotconf_app

from hotconf.integrations.uwsgi import run_mule

run_mule(hotconf_app.cfg)
