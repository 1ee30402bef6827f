"""This process's part for one Config: the host's poller, or a reader that follows the store.

Readers learn of a new snapshot by the store's push (the uWSGI signal, a watchdog event on the
cache file) and, as a safety net, by comparing the store's cheap version token once a second;
the same loop retries the election, so a standby takes over within about a second of the
poller's death. The store is asked, never inspected: whether it is shared (an election is
needed), how it pushes, where it falls back are its own business.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from typing import Callable, Literal, Optional

from ..election import RECREATE_AFTER, PollerLock
from ..options import Settings
from ..runtime import ProcessFacts, threads_problem
from ..snapshot import Snapshot
from ..stores import Store
from .poller import Poller

log = logging.getLogger("hotconf")

STANDBY_INTERVAL = 1.0
GUARD_INTERVAL = 1.0  # how often the poller checks that its lock file is still the one

#: What a process does for a Config: ``"poller"`` (it talks to Apollo for the host),
#: ``"reader"`` (it follows the shared store), ``"idle"`` (not armed in this process yet).
RoleName = Literal["poller", "reader", "idle"]


class Role:
    def __init__(
        self,
        settings: Settings,
        facts: ProcessFacts,
        store: Store,
        competes: bool,
        deliver: Callable[[Snapshot], None],
        held: Callable[[], Optional[Snapshot]] = lambda: None,
        fallback_store: Optional[Callable[[], Store]] = None,
        standby_interval: float = STANDBY_INTERVAL,
        guard_interval: float = GUARD_INTERVAL,
        on_poller: Callable[[], None] = lambda: None,  # on becoming poller, then each guard
        make_poller: Callable[[Settings, Store], Poller] = Poller,
    ):
        """``deliver`` receives every newer snapshot; ``held`` says which one the process holds
        (unchanged namespaces are reused); ``fallback_store`` is used when the host's lock
        directory is unusable (this process then polls for itself)."""
        self.pid = os.getpid()
        self.settings, self.facts = settings, facts
        self.store = store
        self.competes = competes
        self.lock = PollerLock(settings.cache_dir / f"{settings.instance_key}.poller.lock")
        self.poller: Optional[Poller] = None
        self._deliver_to = deliver
        self._held = held
        self._fallback_store = fallback_store
        self._make_poller = make_poller
        self._interval = standby_interval
        self._guard_interval = guard_interval
        self._on_poller = on_poller
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._standby: Optional[threading.Thread] = None
        self._token: object = None

    @property
    def name(self) -> RoleName:
        return "poller" if self.poller is not None else "reader"

    # -- starting ---------------------------------------------------------------------------------
    def start(self) -> Role:
        problem = threads_problem(self.facts)
        if problem:
            log.error(problem)
        won = True
        if self.store.shared:
            # A process starting now creates a missing lock file at once: waiting would leave a
            # host whose workers live shorter than the wait (max-requests) with no poller. If a
            # poller still held a deleted one, its guard steps down within a second.
            try:
                won = self.competes and self.lock.try_acquire()
            except OSError as exc:
                if self._fallback_store is None:
                    raise
                log.warning("hotconf: cannot use %s for sharing (%s): this process polls for itself "
                            "and shares nothing. Set cache_dir= or APOLLO_CACHE_DIR to a writable "
                            "directory", self.settings.cache_dir, exc.strerror or exc)
                self.store.close()
                self.store = self._fallback_store()
        self.store.subscribe(self._deliver)
        if won:
            self._become_poller()
        else:
            self._start_reader()
        return self

    def _become_poller(self) -> None:
        log.info("hotconf: process %d polls for %s (store: %s)", os.getpid(),
                 self.settings.instance_key, self.store.name)
        poller = self._make_poller(self.settings, self.store)
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
        self._on_poller()
        if self.store.shared:
            threading.Thread(target=self._guard_loop, name="hotconf-lock-guard",
                             daemon=True).start()

    def _guard_loop(self) -> None:
        """While polling: if the lock file is deleted or replaced, put a new one in place
        before a standby does, or step down if one already holds it (never two pollers for
        longer than this interval)."""
        while not self._stop.wait(self._guard_interval):
            poller = self.poller
            if poller is None:
                return
            try:
                if self.lock.reassert():
                    poller.restore_if_missing()
                    self._on_poller()
                    continue
            except OSError as exc:  # the directory itself is gone for now: try again
                log.debug("hotconf: checking the poller lock failed: %s", exc)
                continue
            log.warning("hotconf: process %d stops polling for %s: its lock file %s was "
                        "replaced and another process holds the new one", os.getpid(),
                        self.settings.instance_key, self.lock.path)
            self.poller = None
            poller.stop()
            self._start_reader()
            return

    def _start_reader(self) -> None:
        self.store.watch(self.refresh)
        log.debug("hotconf: process %d reads %s (store: %s)", os.getpid(),
                  self.settings.instance_key, self.store.name)
        self.refresh()
        self._standby = threading.Thread(target=self._standby_loop, name="hotconf-standby",
                                         daemon=True)
        self._standby.start()

    # -- reading ----------------------------------------------------------------------------------
    def _deliver(self, snapshot: Snapshot) -> None:
        self._deliver_to(snapshot)
        self._ready.set()

    def refresh(self) -> None:
        """Pick up the newest snapshot this host has."""
        if self._stop.is_set():
            return
        self._token = self.store.token()
        newest = self.store.latest(self._held())
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
                if self.competes and not self._stop.is_set() and \
                        self.lock.try_acquire(create_missing_after=RECREATE_AFTER):
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
        self.store.close()
        self.lock.release()
