"""Reload actions: what a reload does. Server-level actions (a uWSGI chain or graceful reload,
gunicorn's SIGHUP) are defined by their server in ``hotconf.servers``; the ones here need no
server: the user's ``on_reload`` callable, or nothing but a warning."""

from __future__ import annotations

import logging
from typing import Callable

from .policy import ReloadRequest

log = logging.getLogger("hotconf")


class Reloader:
    """A reload action. ``server_level`` ones run once per server, in the poller's process."""

    server_level = True
    description = "reload"

    def __call__(self, request: ReloadRequest) -> None:
        raise NotImplementedError


class CallbackReloader(Reloader):
    server_level = False

    def __init__(self, callback: Callable[[ReloadRequest], None]):
        self.callback = callback
        self.description = f"on_reload callback {getattr(callback, '__qualname__', callback)!s}"

    def __call__(self, request: ReloadRequest) -> None:
        self.callback(request)


class NoReloader(Reloader):
    server_level = False
    description = "nothing (no server to reload and no on_reload callback)"

    def __call__(self, request: ReloadRequest) -> None:
        log.warning("hotconf: %s changed and needs a reload, but nothing can reload this "
                    "process: pass Config(on_reload=...) to rebuild what depends on it",
                    request.summary)
