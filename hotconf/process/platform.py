"""The questions hotconf asks the server a process runs in, and the registry of answers.

Each server module in ``hotconf.servers`` (uwsgi, gunicorn, celery, plain) subclasses ``Platform`` and
registers itself when ``hotconf`` is imported; the process role asks ``current()`` and never
imports a server. This class's own answers are a plain process's: no master, no push channel
but the cache file, the user's callback as the reload action.
"""

from __future__ import annotations

import threading
from typing import Callable, List, Optional, Tuple

from ..cache import LocalCache
from ..errors import HotconfError, ReloadError
from ..options import Options
from ..reload.actions import CallbackReloader, NoReloader, Reloader
from ..runtime import ProcessFacts, store_kind
from ..stores import Store, open_local_store


class Platform:
    name = "plain"

    def detect(self) -> Optional[ProcessFacts]:
        """This process's facts if it runs under this server, else None."""
        return ProcessFacts()

    def prepare(self, arm_all: Callable[[], object]) -> None:
        """Called when a Config is created. In a master that forks later, register what must
        exist before the fork (uWSGI: the workers' signal, a post-fork hook calling
        ``arm_all``). Registering starts nothing: no thread, no request."""

    def open_store(self, options: Options, facts: ProcessFacts, cache: LocalCache) -> Store:
        """The shared store for this process (``options.store`` resolved for this server)."""
        return open_local_store(store_kind(facts, options.store), cache)

    def server_reloader(self, facts: ProcessFacts) -> Optional[Reloader]:
        """How this server reloads itself as a whole (None: it cannot)."""
        return None

    def reloader(self, options: Options, facts: ProcessFacts) -> Reloader:
        """The reload action for ``options.reload``: ``auto`` is this server's own reload, else
        the ``on_reload`` callback, else nothing; a server's name forces that server's action
        (as configured, even where hotconf does not detect that server)."""
        kind = options.reload
        if kind == "auto":
            own = self.server_reloader(facts)
            if own is not None:
                return own
            kind = "callback" if options.on_reload is not None else "none"
        if kind == "callback" and options.on_reload is not None:
            return CallbackReloader(options.on_reload)
        if kind == "none":
            return NoReloader()
        for platform in list(_registered):
            if platform.name == kind:
                forced = platform.server_reloader(facts)
                if forced is not None:
                    return forced
        raise ReloadError(f"reload={kind!r}: no such reload action here (use auto, uwsgi, "
                          f"gunicorn, celery, callback or none)")


_registered: List[Platform] = []
_lock = threading.Lock()


def register(platform: Platform) -> None:
    """Add a server's answers; the first registered whose ``detect()`` answers wins, so the
    plain process registers last."""
    with _lock:
        if all(type(p) is not type(platform) for p in _registered):
            _registered.append(platform)


def current() -> Tuple[Platform, ProcessFacts]:
    """The server this process runs in, and its facts (asked anew: they change at fork)."""
    for platform in list(_registered):
        facts = platform.detect()
        if facts is not None:
            return platform, facts
    raise HotconfError("no server platform is registered: import the hotconf package (it "
                       "registers hotconf.servers) before using hotconf.process")
