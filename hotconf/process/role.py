"""This process's part for one Config: the host's poller, or a reader that follows the store.

Nothing here runs on a timer while the host is healthy. Readers learn of a new snapshot by the
store's push (the uWSGI signal, an inotify event on the cache index). A standby waits in
``flock`` on the poller's lock, so the kernel wakes it the moment the poller dies and it takes
over at once. A safety net compares the store's cheap version token every few tens of seconds
(a missed push); the poller's guard wakes when its lock file or the cache is deleted.

A uWSGI mule is the preferred poller (``claims``): while it stands by it stakes a claim
(``election.PollerClaim``), and a worker polling in its stead, because the mule died and
uWSGI has not respawned it yet, hands the role back when the claim appears. So the host
never waits for the respawn, and polling goes back where the operator put it.
The store is asked, never inspected: whether it is shared (an election is needed), how it
pushes, where it falls back are its own business.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from typing import Callable, Literal, Optional

from ..election import PollerClaim, PollerLock
from ..options import Settings
from ..registry import Registry
from ..runtime import ProcessFacts, threads_problem
from ..snapshot import Snapshot
from ..stores import Store
from ..stores.watch import LossWatch
from . import standby
from .poller import Poller
from .report import PollerReport, ProcessReport

log = logging.getLogger("hotconf")

SAFETY_INTERVAL = 60.0  # a reader compares the store's token this often, in case a push was lost
BEHIND_INTERVAL = 2.0  # ...and this often while it finds itself behind the store
GUARD_INTERVAL = 2.0  # the poller's check of its lock file and the cache where inotify is not
GUARD_FALLBACK = 60.0  # ...and where it is (it wakes on a deletion): in case an event was lost
LOSS_SETTLE = 0.5  # after a deletion, before putting things back

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
        safety_interval: float = SAFETY_INTERVAL,
        guard_interval: float = GUARD_INTERVAL,
        on_poller: Callable[[], None] = lambda: None,  # on becoming poller, or a lock put back
        make_poller: Callable[[Settings, Store], Poller] = Poller,
        claims: bool = False,
        stand_in_after: float = 0.0,
    ):
        """``deliver`` receives every newer snapshot; ``held`` says which one the process holds
        (unchanged namespaces are reused); ``fallback_store`` is used when the host's lock
        directory is unusable (this process then polls for itself); ``claims``: this process
        is the preferred poller (hotconf's mule), others hand the role back to it;
        ``stand_in_after``: compete only after so many seconds (a worker leaving the start to
        the mule, which arms a moment later)."""
        self.pid = os.getpid()
        self.settings, self.facts = settings, facts
        self.store = store
        self.competes = competes
        self.lock = PollerLock(settings.cache_dir / f"{settings.instance_key}.poller.lock")
        self.claims = claims
        self.claim = PollerClaim(self.lock.path)
        self._stand_in_after = stand_in_after
        self._grace: Optional[threading.Timer] = None
        self.poller: Optional[Poller] = None
        self._deliver_to = deliver
        self._held = held
        self._fallback_store = fallback_store
        self._make_poller = make_poller
        self._interval = safety_interval
        self._guard_interval = guard_interval
        self._on_poller = on_poller
        self._stop = threading.Event()
        self._guard_wake = threading.Event()
        self._safety_wake = threading.Event()
        self._guard_mutex = threading.Lock()  # a guard check and stop() never overlap
        self._ready = threading.Event()
        self._safety: Optional[threading.Thread] = None
        self._token: object = None
        # One refresh at a time: the push, the cache file's event and a request's check can
        # all fire for one release, and each would read the changed parts again.
        self._refresh_lock = threading.RLock()
        self.report = ProcessReport(Registry(settings.cache_dir, settings.instance_key), facts,
                                    settings.instance_key, settings.stale_after,
                                    shared=store.shared)

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
                if self.competes and self._stand_in_after > 0:
                    self.lock.check_usable()
                    won = False
                else:
                    won = self.competes and not self._should_yield() and self.lock.try_acquire()
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
        # A store of its own: this process polls for itself alone, the host's file is not its.
        poller.report = PollerReport(self.report.registry if self.store.shared else None)
        self.poller = poller
        loaded = poller.load_initial(self._held())
        if loaded is not None and self._ready.is_set():
            # Taking over, load_initial publishes nothing when nothing changed: a standby that
            # missed the last push gets the host's newer snapshot here (dropped unless newer).
            self._deliver(loaded)
        if not self._ready.is_set():
            # Nothing delivered: nothing loaded at all, or the store already holds a newer
            # snapshot than ours (another poller was ahead). Serve what the host has.
            self.refresh()
        if self._stop.is_set():  # stopped while taking over: hand the role straight back
            poller.stop()
            self.lock.release()
            return
        poller.start()
        poller.report.begin(self.settings)
        self.report.role("poller")
        self._on_poller()
        if self.store.shared:
            self._start_safety_net()  # (a poller's keeps its record fresh)
            files, dirs = self.store.kept_in()
            claims = [] if self.claims else [self.claim.path]
            losses = LossWatch([self.lock.path, *files], dirs, writes=claims)
            losses.start(self._guard_wake.set)  # before the thread: no deletion is missed
            if self._should_yield():  # a claim staked before the watch began
                self._guard_wake.set()
            threading.Thread(target=self._guard_loop, args=(losses,), name="hotconf-lock-guard",
                             daemon=True).start()

    def _guard_loop(self, losses: LossWatch) -> None:
        """While polling: if the lock file is deleted or replaced, put a new one in place
        before a standby does, or step down if one already holds it; put back a cache the host
        lost. Woken by inotify when one of them is deleted, else on a timer."""
        try:
            while True:
                if self._guard_wake.wait(GUARD_FALLBACK if losses.available
                                         else self._guard_interval):
                    # Let a deletion in progress finish (an `rm -rf` of the cache dir would
                    # fail with "Directory not empty" if we wrote into it at once).
                    self._stop.wait(LOSS_SETTLE)
                self._guard_wake.clear()
                if self._stop.is_set() or not self._guard_once():
                    return
                losses.renew()
        finally:
            losses.close()

    def _guard_once(self) -> bool:
        """One check; False once this process no longer polls."""
        with self._guard_mutex:
            poller = self.poller
            if poller is None or self._stop.is_set():
                return False
            return self._guard_checks(poller)

    def _guard_checks(self, poller: Poller) -> bool:
        if self._should_yield():
            log.info("hotconf: process %d hands polling for %s back to the mule that claims "
                     "it", os.getpid(), self.settings.instance_key)
            self._step_down(poller)
            return False
        try:
            ours = self.lock.still_ours()
            if ours or self.lock.reassert():
                poller.restore_if_missing()
                self.report.ensure()  # (a wiped cache dir took the registry too)
                poller.report.ensure()
                if not ours:
                    self._on_poller()
                return True
        except OSError as exc:  # the directory itself is gone for now: try again
            log.debug("hotconf: checking the poller lock failed: %s", exc)
            if not self._stop.wait(self._guard_interval):
                self._guard_wake.set()  # the directory is gone for now: look again soon
            return True
        log.warning("hotconf: process %d stops polling for %s: its lock file %s was "
                    "replaced and another process holds the new one", os.getpid(),
                    self.settings.instance_key, self.lock.path)
        self._step_down(poller)
        return False

    def _step_down(self, poller: Poller) -> None:
        self.poller = None
        poller.stop()  # nothing is published once this returns: then the lock may go
        self.lock.release()
        self._start_reader()

    def _should_yield(self) -> bool:
        """A mule stands by for the role and this process is not one."""
        return not self.claims and self.claim.pending()

    def _start_reader(self) -> None:
        if self._stop.is_set():  # stopped while stepping down: stand by for nobody
            return
        self.report.role("reader")
        self.store.watch(self.refresh)
        log.debug("hotconf: process %d reads %s (store: %s)", os.getpid(),
                  self.settings.instance_key, self.store.name)
        self.refresh()
        self._start_safety_net()
        if self.competes and self.store.shared:
            if self._stand_in_after > 0:
                self._grace = threading.Timer(self._stand_in_after, self._end_grace)
                self._grace.daemon, self._grace.name = True, "hotconf-stand-in-grace"
                self._grace.start()
            else:
                self._stand_by()

    def _start_safety_net(self) -> None:
        if self._safety is None:
            self._safety = threading.Thread(target=self._safety_loop, name="hotconf-safety-net",
                                            daemon=True)
            self._safety.start()

    def _end_grace(self) -> None:
        self._stand_in_after = 0.0
        with self._guard_mutex:
            if not self._stop.is_set() and self.poller is None:
                self._stand_by()

    def prefer(self) -> None:
        """``run_mule`` in a process already armed (a read at import, the post-fork hook, even
        under ``poller="never"``): it becomes the preferred poller, claiming the role."""
        with self._guard_mutex:
            if self._stop.is_set() or self.claims:
                return
            self.claims = self.competes = True
            self._stand_in_after = 0.0
            standing_by = self.poller is None and self.store.shared
            if standing_by:
                self._stand_by()

    def _stand_by(self) -> None:
        self._stake_claim()
        standby.stand_by(self.lock.path, self)

    def _stake_claim(self) -> None:
        if not self.claims:
            return
        try:
            self.claim.stake()
        except OSError as exc:  # still a candidate, only not a preferred one
            log.warning("hotconf: cannot claim polling for %s (%s)",
                        self.settings.instance_key, exc)

    # -- reading ----------------------------------------------------------------------------------
    def _deliver(self, snapshot: Snapshot) -> None:
        self._deliver_to(snapshot)
        self._ready.set()
        held = self._held()
        if held is not None and not self._stop.is_set():
            self.report.applied(held)

    def refresh(self) -> None:
        """Pick up the newest snapshot this host has."""
        if self._stop.is_set():
            return
        with self._refresh_lock:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        token = self.store.token()
        if token == self._token and self._held() is not None and not self.report.behind:
            return  # (another thread's refresh has just read this; behind, the safety net
            #          retries a store it could not read, whatever its token)
        newest = self.store.latest(self._held())
        if newest is not None:
            self._deliver(newest)
        elif self.store.shared:  # unreadable: are we behind? (the safety net then retries)
            was_behind = self.report.behind
            self.report.checked(self.store.version())
            if self.report.behind and not was_behind:
                self._safety_wake.set()  # from its minute's wait to the shorter one
        # An empty store is read again at the next check (a request's, the first load); one
        # ahead of us that we cannot read is retried by the safety net alone, not by requests.
        self._token = token if newest is not None or self.report.behind else None

    def check(self) -> None:
        """Cheap freshness check (a version read), e.g. at the start of a request."""
        if self.poller is None and self.store.token() != self._token:
            self.refresh()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    # -- standing by (see standby.py: the kernel wakes the waiter when the poller dies) ----------
    def take_lock(self, lock: PollerLock) -> bool:
        with self._guard_mutex:
            if self._stop.is_set() or self._should_yield():
                return False  # (the waiter lets a claimant have it, see standby)
            self.lock = lock
        standby.leave(lock.path, self)
        self.claim.withdraw()  # ours now (a mule whose takeover fails stands by unclaimed)
        if not self.claims:  # (a mule's is the normal way in: _become_poller says it)
            log.warning("hotconf: process %d takes over polling for %s (the previous poller "
                        "is gone)", os.getpid(), self.settings.instance_key)
        try:
            self._become_poller()
        except BaseException:
            # Holding the lock without polling would leave the host with no poller: let it
            # go, and stand by again.
            poller, self.poller = self.poller, None
            if poller is not None:
                poller.stop()
            with self._guard_mutex:
                self.lock.release()
                if not self._stop.is_set():
                    # No claim while it cannot poll: workers must not yield to it meanwhile.
                    standby.stand_by(self.lock.path, self)
            raise
        return True

    def lock_replaced(self) -> None:
        if not self._stop.is_set():
            if self.claims:  # the claim may have gone with the lock file: stake a new one
                self.claim.withdraw()
                self._stake_claim()
            self.store.rewatch()
            self.check()

    def _safety_loop(self) -> None:
        rng = random.Random()
        while True:
            self._safety_wake.wait(min(self._interval, BEHIND_INTERVAL) if self.report.behind
                                   else self._interval * (0.75 + 0.5 * rng.random()))
            self._safety_wake.clear()
            if self._stop.is_set():
                return
            try:
                if self.poller is not None:  # its record stays fresh (other pid namespaces)
                    self.report.checked(None)
                    continue
                self.store.rewatch()
                if self.report.behind:
                    self.refresh()
                else:
                    self.check()  # a token compare: a newer snapshot is read and applied
                # Only while behind is the store's version read again (the token said enough).
                self.report.checked(self.store.version() if self.report.behind else None)
            except Exception:  # noqa: BLE001 - the safety net must outlive any one failure
                log.exception("hotconf: checking the store failed")

    # -- stopping ---------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        if self._grace is not None:
            self._grace.cancel()
        self._guard_wake.set()
        self._safety_wake.set()
        standby.leave(self.lock.path, self)
        self.claim.withdraw()
        if self.poller is not None:
            self.poller.stop()
        self.store.close()
        with self._guard_mutex:
            self.lock.release()
        self.report.gone()
        self.report.registry.close()  # (the poller's file too: its report shares the registry)
