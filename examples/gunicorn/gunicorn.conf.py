# hotconf under gunicorn: `gunicorn -c gunicorn.conf.py app:app`
bind = "127.0.0.1:9091"
workers = 4
preload_app = True  # hotconf is fine either way: with preload the app is imported once

# Arms hotconf in each worker right after the fork: the workers elect one poller (a lock file
# in the cache dir) and follow the snapshot it writes. Without this hook hotconf still sees the
# fork and arms on each worker's first read.
from hotconf.integrations.gunicorn import post_fork  # noqa: E402,F401
