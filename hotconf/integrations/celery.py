"""Celery integration: ``init_app(celery_app, cfg)``, next to the app, at import.

    from celery import Celery
    from hotconf import Config
    from hotconf.integrations.celery import init_app

    app = Celery("proj", broker=...)
    cfg = init_app(app, Config(app_id="proj"))

What it gives a worker (``hotconf.servers.celery`` has the how):
- a prefork worker's main process never polls: a read there (a tasks module reading config at
  import) loads once and starts nothing, and if it armed before Celery said it is a worker's
  main process (a worker started from code), it is disarmed before the pool forks;
- each pool child arms right after its fork (``worker_process_init``, within 1.5 s, well inside
  Celery's 4 s ``worker_proc_alive_timeout``): one child polls for the host (sharing the poller
  with a web app on the same host when app, cluster, namespaces, cache dir and user are the
  same), the others follow its releases;
- before each task, a freshness check (a version read, as the Flask extension does per
  request), so a task reads the newest snapshot the host has;
- a ``reload_on`` change restarts the pool (Celery's ``pool_restart``) where the app sets
  ``worker_pool_restarts = True``, else logs once that the worker needs a restart;
- solo, threads, gevent and eventlet pools run the tasks in the main process: it arms once
  the worker is ready and polls or reads as any process.

Celery is imported only by the app that calls this: ``import hotconf`` never imports it.
"""

from __future__ import annotations

from typing import Any, Dict

from ..config import Config
from ..servers.celery import attach

#: The Config of each app given to init_app (``config_of``), by the app's id.
_configs: Dict[int, Config] = {}


def init_app(app: Any, cfg: Config) -> Config:
    """Follow ``app``'s workers with ``cfg`` (see the module's docstring); returns ``cfg``.
    Call it once per Config; a second call with the same pair changes nothing."""
    if not isinstance(cfg, Config):
        raise TypeError(f"init_app needs a hotconf Config, got {cfg!r}")
    attach(app, cfg.check)
    _configs.setdefault(id(app), cfg)
    return cfg


def config_of(app: Any) -> Config:
    """The Config ``init_app`` was given for ``app`` (the first one, if several)."""
    try:
        return _configs[id(app)]
    except KeyError:
        raise RuntimeError("this Celery app has no hotconf Config: call "
                           "hotconf.integrations.celery.init_app(app, cfg) first") from None
