"""What one Config runs in one process: a shared store, the host's poller election, and
either the poller (if this process won) or a reader that follows the store.

Readers learn of a new snapshot by push (the uWSGI signal, a watchdog event on the cache file)
and, as a safety net, by comparing the store's cheap version token once a second; the same
loop retries the election, so a standby takes over within about a second of the poller's death.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from typing import Callable, Optional

from .cache import LocalCache
from .election import PollerLock
from .errors import HotconfError
from .poller import Poller
from .runtime import ProcessFacts, competes_for_poller, store_kind, threads_problem
from .settings import Settings
from .snapshot import Snapshot
from .stores import BaseStore, FileStore, MemoryStore

log = logging.getLogger("hotconf")

STANDBY_INTERVAL = 1.0


def make_store(kind: str, settings: Settings, facts: ProcessFacts, cache: LocalCache) -> BaseStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "file":
        return FileStore(cache)
    if kind == "uwsgi":
        from .integrations.uwsgi import UwsgiCacheStore

        if facts.uwsgi_cache is None:
            raise HotconfError("store='uwsgi' needs 'cache2 = name=hotconf,items=16,"
                               "blocksize=1048576' in the [uwsgi] section")
        name, blocksize, bitmap = facts.uwsgi_cache
        return UwsgiCacheStore(name, settings.instance_key, blocksize, bitmap)
    raise HotconfError(f"unknown store {kind!r}: use 'auto', 'uwsgi', 'file' or 'memory'")


class Engine:
    def __init__(self, settings: Settings, facts: ProcessFacts, store: str, poller: str,
                 deliver: Callable[[Snapshot], None], standby_interval: float = STANDBY_INTERVAL,
                 held: Callable[[], Optional[Snapshot]] = lambda: None):
        self.pid = os.getpid()
        self.settings, self.facts = settings, facts
        self.cache = LocalCache.for_settings(settings)
        self.kind = store_kind(facts, store)
        self.store = make_store(self.kind, settings, facts, self.cache)
        self.competes = competes_for_poller(facts, poller)
        self.lock = PollerLock(settings.cache_dir / f"{settings.instance_key}.poller.lock")
        self.poller: Optional[Poller] = None
        self._deliver_to = deliver
        self._held = held  # the snapshot this process holds: unchanged namespaces are reused
        self._interval = standby_interval
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._file_watch: Optional[FileStore] = None
        self._file_store = FileStore(self.cache)  # for the cache file's cheap change token
        self._file_token: object = None
        self._standby: Optional[threading.Thread] = None
        self._token: object = None

    @property
    def role(self) -> str:
        return "poller" if self.poller is not None else "reader"

    # -- starting ---------------------------------------------------------------------------------
    def start(self) -> Engine:
        problem = threads_problem(self.facts)
        if problem:
            log.error(problem)
        if self.kind != "memory":
            try:
                won = self.competes and self.lock.try_acquire()
            except OSError as exc:
                log.warning("hotconf: cannot use %s for sharing (%s): this process polls for itself "
                            "and shares nothing. Set cache_dir= or APOLLO_CACHE_DIR to a writable "
                            "directory", self.settings.cache_dir, exc.strerror or exc)
                self.kind, self.store = "memory", MemoryStore()
                won = True
        self.store.subscribe(self._deliver)
        if self.kind == "memory" or won:
            self._become_poller()
        else:
            self._start_reader()
        return self

    def _become_poller(self) -> None:
        log.info("hotconf: process %d polls for %s (store: %s)", os.getpid(),
                 self.settings.instance_key, self.kind)
        poller = Poller(self.settings, self.store, cache=self.cache)
        self.poller = poller
        poller.load_initial()
        if not self._ready.is_set():
            # Nothing delivered: nothing loaded at all, or the store already holds a newer
            # snapshot than ours (another poller was ahead). Serve what the host has.
            self.refresh()
        if self._stop.is_set():  # stopped while taking over: hand the role straight back
            poller.stop()
            self.lock.release()
            return
        poller.start()

    def _start_reader(self) -> None:
        pushed = False
        if self.kind == "uwsgi":
            from .integrations import uwsgi as uwsgi_integration

            pushed = uwsgi_integration.add_refresher(self.refresh)
        if self.kind != "memory":
            # The poller rewrites the cache file on every release: watching it is the push for
            # the file store, and a second path (oversized snapshot, no signal) for the others.
            watch = self.store if isinstance(self.store, FileStore) else self._file_store
            watch.watch(self.refresh)
            self._file_watch = watch
        log.debug("hotconf: process %d reads %s (store: %s, signal: %s)", os.getpid(),
                  self.settings.instance_key, self.kind, pushed)
        self.refresh()
        self._standby = threading.Thread(target=self._standby_loop, name="hotconf-standby",
                                         daemon=True)
        self._standby.start()

    # -- reading ----------------------------------------------------------------------------------
    def _deliver(self, snapshot: Snapshot) -> None:
        self._deliver_to(snapshot)
        self._ready.set()

    def refresh(self) -> None:
        """Pick up the newest snapshot this host has (the store, else the cache file)."""
        if self._stop.is_set():
            return
        self._token = self.store.token()
        held = self._held()
        newest = self.store.latest(held)
        if not self.store.persistent and not _newer(newest, held):
            # The store has nothing new for us (wiped by a full reload, or the snapshot did not
            # fit it): the cache file, which the poller writes on every release, may. Decode it
            # only if it changed since we last looked.
            file_token = self._file_store.token()
            if file_token != self._file_token:
                self._file_token = file_token
                from_file = self.cache.load(held)
                if _newer(from_file, newest):
                    newest = from_file
        if newest is not None:
            self._deliver(newest)

    def check(self) -> None:
        """Cheap freshness check (a version read), e.g. at the start of a request."""
        if self.poller is None and self.store.token() != self._token:
            self.refresh()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def _standby_loop(self) -> None:
        rng = random.Random()
        while not self._stop.wait(self._interval * (0.75 + 0.5 * rng.random())):
            try:
                if self.competes and not self._stop.is_set() and self.lock.try_acquire():
                    log.warning("hotconf: process %d takes over polling for %s (the previous "
                                "poller is gone)", os.getpid(), self.settings.instance_key)
                    self._become_poller()
                    return
                self.check()
            except Exception:  # noqa: BLE001 - the standby must outlive any one failure
                log.exception("hotconf: standby check failed")

    # -- stopping ---------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        if self.poller is not None:
            self.poller.stop()
        if self.kind == "uwsgi":
            from .integrations import uwsgi as uwsgi_integration

            uwsgi_integration.remove_refresher(self.refresh)
        if self._file_watch is not None:
            self._file_watch.close()
        self.store.close()
        self.lock.release()


def _newer(candidate: Optional[Snapshot], than: Optional[Snapshot]) -> bool:
    return candidate is not None and (than is None or candidate.version > than.version)
