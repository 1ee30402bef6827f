"""uWSGI: facts, the workers' signal (the push channel), the post-fork hook, the cache store,
and the reload actions.

The user-facing entry points (``run_mule``, ``shared-import = hotconf.integrations.uwsgi``) are
in ``hotconf.integrations.uwsgi``; uwsgi.ini.example explains every option.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, List, Optional

from ..cache import LocalCache
from ..errors import HotconfError
from ..options import Options
from ..process.platform import Platform
from ..reload.actions import Reloader
from ..reload.policy import ReloadRequest
from ..runtime import ProcessFacts, parse_cache2, store_kind
from ..stores import LayeredStore, Store
from ..stores.uwsgi import UwsgiCacheStore
from .control import write_fifo

log = logging.getLogger("hotconf")

def _uwsgi() -> Any:
    """uWSGI's embedded module, or None outside uWSGI. Never imported: inside uWSGI it is in
    sys.modules from the start, and a stray uwsgi.py on sys.path must not be picked up."""
    module = sys.modules.get("uwsgi")
    return module if module is not None and hasattr(module, "worker_id") else None

FIRST_SIGNAL = 100


def _opt(key: str) -> Any:
    try:
        return _uwsgi().opt.get(key)
    except Exception:  # noqa: BLE001 - uwsgi.opt is a plain dict; be defensive anyway
        return None


def _opt_text(key: str) -> Optional[str]:
    value = _opt(key)
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode()
    return value if isinstance(value, str) and value else None


def _spooler() -> bool:
    try:
        return bool(_uwsgi().i_am_the_spooler())
    except Exception:  # noqa: BLE001 - older uWSGI, or no spooler support
        return False


class SignalPush:
    """The push channel: a uWSGI signal registered in the master with target ``workers``, so
    one ``uwsgi.signal()`` from the poller runs every worker's refreshers between requests."""

    def __init__(self) -> None:
        self.number: Optional[int] = None
        self._callbacks: List[Callable[[], None]] = []
        self._lock = threading.Lock()

    def register_in_master(self) -> Optional[int]:
        """In the uWSGI master, before the fork (only the master's registration reaches every
        worker). Safe to call more than once; a no-op elsewhere."""
        uwsgi = _uwsgi()
        if uwsgi is None or self.number is not None:
            return self.number
        if uwsgi.masterpid() != os.getpid() or uwsgi.worker_id() != 0 or uwsgi.mule_id() != 0:
            return None
        for number in range(FIRST_SIGNAL, 256):
            if not uwsgi.signal_registered(number):
                uwsgi.register_signal(number, "workers", self._on_signal)
                self.number = number
                return number
        log.warning("hotconf: no free uWSGI signal number; workers will notice changes by "
                    "watching the cache file instead")
        return None

    def _on_signal(self, signum: int) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001
                log.exception("hotconf: refreshing after uWSGI signal %d failed", signum)

    def notify(self) -> None:
        uwsgi = _uwsgi()
        if uwsgi is not None and self.number is not None:
            try:
                uwsgi.signal(self.number)
            except Exception:  # noqa: BLE001 - a missed push is caught by the workers' checks
                log.warning("hotconf: raising uWSGI signal %d failed", self.number)

    def add(self, callback: Callable[[], None]) -> bool:
        if self.number is None:
            return False
        with self._lock:
            self._callbacks.append(callback)
        return True

    def remove(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


PUSH = SignalPush()


class UwsgiReloader(Reloader):
    """With lazy-apps: a chain reload (workers replaced one at a time, no stall) through the
    master FIFO or touch-chain-reload. Without lazy-apps a chain reload re-forks the old app and
    changes nothing, so it is a graceful reload (``uwsgi.reload()``)."""

    def __init__(self, lazy: bool):
        self.lazy = lazy
        self.fifo = _opt_text("master-fifo")
        self.touch = _opt_text("touch-chain-reload")
        if not lazy:
            self.description = "graceful uWSGI reload"
        elif self.fifo:
            self.description = f"uWSGI chain reload (master FIFO {self.fifo})"
        elif self.touch:
            self.description = f"uWSGI chain reload (touch {self.touch})"
        else:
            self.description = "graceful uWSGI reload (for a chain reload set master-fifo)"

    def __call__(self, request: ReloadRequest) -> None:
        if self.lazy and self.fifo:
            write_fifo(self.fifo, b"c")
        elif self.lazy and self.touch:
            Path(self.touch).touch()
        else:
            _uwsgi().reload()


class UwsgiServer(Platform):
    name = "uwsgi"

    def __init__(self) -> None:
        self._post_fork_armed = False

    def detect(self) -> Optional[ProcessFacts]:
        uwsgi = _uwsgi()
        if uwsgi is None:
            return None
        worker, mule = uwsgi.worker_id(), uwsgi.mule_id()
        version = getattr(uwsgi, "version", b"")
        # The process that loads the app before uWSGI forks: the master, or without a master
        # the first process (it becomes worker 1 and C-forks the others: no hook of Python's
        # runs in them, so nothing may start here). A spooler also has no worker id.
        master = uwsgi.masterpid()
        loader = worker == 0 and mule == 0 and master in (0, os.getpid()) and not _spooler()
        return ProcessFacts(
            server="uwsgi",
            uwsgi_master=loader,
            uwsgi_mule=mule > 0,
            uwsgi_threads=bool(getattr(uwsgi, "has_threads", 1)),
            uwsgi_version=version.decode() if isinstance(version, bytes) else str(version),
            uwsgi_lazy=bool(_opt("lazy-apps") or _opt("lazy")),
            uwsgi_cache=parse_cache2(_opt("cache2")),
            worker=worker or None,
            mule=mule or None,
        )

    def prepare(self, arm_all: Callable[[], object]) -> None:
        """In the master (before the fork): register the workers' signal, and a post-fork hook
        that arms each worker and mule right away (uwsgidecorators' hook chain, so the app's own
        @postfork hooks keep working). Without a master, workers arm on their first read."""
        if _uwsgi() is None:
            return
        try:
            if PUSH.register_in_master() is None or self._post_fork_armed:
                return
            try:
                from uwsgidecorators import postfork
            except Exception:  # noqa: BLE001 - no master: workers arm on their first read
                return
            postfork(arm_all)
            self._post_fork_armed = True
        except Exception:  # noqa: BLE001 - never break the app's import
            log.exception("hotconf: could not register the uWSGI signal")

    def open_store(self, options: Options, facts: ProcessFacts, cache: LocalCache) -> Store:
        if store_kind(facts, options.store) != "uwsgi":
            return super().open_store(options, facts, cache)
        if facts.uwsgi_cache is None:
            raise HotconfError("store='uwsgi' needs 'cache2 = name=hotconf,items=16,"
                               "blocksize=1048576' in the [uwsgi] section")
        name, blocksize, bitmap = facts.uwsgi_cache
        front = UwsgiCacheStore(_uwsgi(), PUSH, name, options.settings.instance_key, blocksize,
                                bitmap)
        # The cache file behind it: the last good copy on disk, what readers fall back to when
        # a full reload wiped the uWSGI cache or the snapshot did not fit it.
        return LayeredStore(front, cache, watch_file=True)

    def server_reloader(self, facts: ProcessFacts) -> Reloader:
        return UwsgiReloader(facts.uwsgi_lazy)
