"""Integrations (top floor): what users put in their app or server configuration.

- ``asyncio``: ``lifespan(cfg)`` for ASGI apps (``await cfg.ready()`` at startup, stop at
  shutdown);
- ``fastapi``: ``settings(cfg, Model)``, a dependency for bound models (and the lifespan);
- ``flask``: ``HotConf(app, cfg)``, a freshness check at each request;
- ``gunicorn``: ``post_fork`` for gunicorn.conf.py;
- ``uwsgi``: ``run_mule`` and the master-side ``shared-import``;
- ``django``: an app for ``INSTALLED_APPS``, a middleware, ``manage.py hotconf``, views;
- ``celery``: ``init_app(celery_app, cfg)``: pool children arm after the fork, a check
  before each task, ``reload_on`` as a pool restart.

May import anything below the top floor (Config, the process role, the core).
"""
