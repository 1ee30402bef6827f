"""Servers (top floor): everything hotconf knows about uWSGI, gunicorn, Celery and a plain
process.

One module per server, each answering the same questions (``process.platform.Platform``): how
to tell it runs here (facts), where its post-fork hook is, which store and push channel it
offers, how it reloads. Importing this package registers them, most specific first; the
``hotconf`` package imports it, so the process role always finds them.

Only modules in this package import ``uwsgi``, ``uwsgidecorators``, ``gunicorn``, ``celery`` or
``billiard``, or send a signal (celery only once the app has imported it). May import anything
below the top floor.
"""

from __future__ import annotations

from ..process.platform import register
from .celery import CeleryServer
from .gunicorn import GunicornServer
from .plain import PlainServer
from .uwsgi import UwsgiServer

register(UwsgiServer())
register(GunicornServer())
register(CeleryServer())  # a web server that imports a Celery app is that web server
register(PlainServer())  # last: a plain process is what is left

__all__ = ["CeleryServer", "GunicornServer", "PlainServer", "UwsgiServer"]
