"""The hotconf mule: the one process of this uWSGI server that long-polls Apollo.

uWSGI runs this file in the mule (`mule = hotconf_mule.py`). It publishes each release to the
uWSGI cache and signals the workers; it never returns. uWSGI respawns it if it dies.
"""

from app import cfg  # the same Config the workers read (inherited from the master)

from hotconf.integrations.uwsgi import run_mule

run_mule(cfg)
