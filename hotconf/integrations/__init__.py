"""Integrations (top floor): what users put in their app or server configuration.

- ``flask``: ``HotConf(app, cfg)``, a freshness check at each request;
- ``gunicorn``: ``post_fork`` for gunicorn.conf.py;
- ``uwsgi``: ``run_mule`` and the master-side ``shared-import``;
- ``django``: an app for ``INSTALLED_APPS``, a middleware, ``manage.py hotconf``, views.

May import anything below the top floor (Config, the process role, the core).
"""
