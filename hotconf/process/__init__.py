"""The process role (middle floor): what one Config does in one process.

- ``binding``: ties a Config to the processes it lives in: arms on the first read or right after
  a fork, never before a fork in a master, forgets its threads in a forked child, stops.
- ``role``: this process's part for one Config: the host's poller, or a reader that follows the
  shared store (and stands by to take over polling).
- ``poller``: the long-poll loop; runs in exactly one process per host.
- ``platform``: the questions a server answers (facts, post-fork hook, store and push channel,
  reload action). The answers live in ``hotconf.servers``, which registers them at import.

May import: the pure core and the I/O edges (apollo client, stores, cache, election, reload
actions). Never a server module, never ``uwsgi`` or ``gunicorn``.
"""
