"""Binds one Config to the processes it lives in.

A Config is created once (often at import, in a master that forks later) and read in many
processes. The binding decides, per process, when hotconf may start there and starts it:
- in a master that will fork: load once, synchronously, start nothing (a thread holding a lock
  at fork time leaves the children hung); the snapshot is kept aside so each child arms itself;
- elsewhere: on the first read, or eagerly right after the fork (``arm_all``: uWSGI's post-fork
  hook, gunicorn's ``post_fork``, a mule);
- in a forked child: the parent's threads are gone, so its role is forgotten and re-armed.

Arming is all or nothing: a role that fails to start (no thread, no inotify instance left) is
torn down, the process serves the host's last good snapshot meanwhile, and arming is retried
with backoff. Equal Configs in a process share one role (``shared``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from dataclasses import replace
from functools import partial
from typing import Any, Dict, List, Optional, Protocol, Tuple

from ..backoff import Backoff
from ..cache import LocalCache
from ..changes import ChangeEvent
from ..errors import ApolloError, ConfigUnavailableError
from ..options import Options
from ..reload.controller import ReloadController
from ..reload.record import ReloadRecord
from ..runtime import claims_poller, competes_for_poller, stands_in_only, will_fork
from ..snapshot import Snapshot
from ..status import DependentState, ProcessRecord, Status
from ..stores import open_local_store
from . import platform
from .poller import Poller
from .role import Role, RoleName
from .shared import SharedRole, shared_role

log = logging.getLogger("hotconf")

#: With poller="mule", how long a uWSGI worker leaves the start to the mule before it competes
#: (a mule arms within a second of the workers; if none comes, a worker polls after this).
STAND_IN_GRACE = 3.0


class Reader(Protocol):
    """The Config side of a binding: it holds a snapshot, installs newer ones (returning the
    change events; none if not newer; models and resources built before a fork catch up at
    its first snapshot), and forgets what it holds in a forked child."""

    _snapshot: Optional[Snapshot]

    def _install(self, snapshot: Snapshot) -> List[ChangeEvent]: ...

    def _forget(self) -> None: ...


_live: weakref.WeakSet[Binding] = weakref.WeakSet()


class Binding:
    def __init__(self, options: Options, owner: Reader):
        """``owner`` (the Config) is held weakly: a Config a program drops is freed at once,
        and the role it used stops when no other Config shares it."""
        self.options = options
        self.settings = options.settings
        self.cache = LocalCache.for_settings(self.settings)
        self._owner = weakref.ref(owner)
        self._lock: Optional[threading.RLock] = None  # made at first use in each process
        self._lock_pid = 0
        self._shared: Optional[SharedRole] = None
        self._prefork: Optional[Snapshot] = None
        self._reloads: Optional[ReloadController] = None
        self._stopped = False
        self._first_wait: Optional[Tuple[int, float]] = None  # (pid, deadline) of the first wait
        self._retry = Backoff(1.0, 60.0)
        self._retry_at: Optional[float] = None
        self.last_error: Optional[ApolloError] = None
        self._dependents: Dict[Tuple[str, str], DependentState] = {}  # this process's, for status
        _live.add(self)
        platform.current()[0].prepare(arm_all)

    # -- the owner ----------------------------------------------------------------------------------
    def _held(self) -> Optional[Snapshot]:
        owner = self._owner()
        return owner._snapshot if owner is not None else None

    def _install(self, snapshot: Snapshot) -> List[ChangeEvent]:
        owner = self._owner()
        return owner._install(snapshot) if owner is not None else []

    @property
    def alive(self) -> bool:
        return self._owner() is not None and not self._stopped

    def _process_lock(self) -> threading.RLock:
        """This process's lock, made at its first use here: under gevent that is after the
        worker was monkey-patched, so greenlets wait on it (a lock made before the patch, e.g.
        in a --preload arbiter, lets every greenlet of the thread through at once)."""
        if self._lock is None or self._lock_pid != os.getpid():
            self._lock, self._lock_pid = threading.RLock(), os.getpid()
        return self._lock

    # -- arming -----------------------------------------------------------------------------------
    def load(self) -> Snapshot:
        """The slow path of a read: the first one in a process, or any read in a master that
        will fork. Arms hotconf in this process (store, election, poller or reader)."""
        with self._process_lock():
            held = self._held()
            if held is not None:
                return held
            if self._stopped:
                if self._prefork is not None:
                    return self._prefork
                raise ConfigUnavailableError("this Config was stopped; create a new one")
            _, facts = platform.current()
            if will_fork(facts):
                return self._load_before_fork()
            role = self.arm()
            wait = 0.0
            if role is not None and role.name == "reader" and self._held() is None:
                wait = self._first_wait_left()
        if wait > 0 and role is not None:
            # Another process polls but has published nothing yet: give it its first load.
            # Only the reads of the first such window wait (concurrent first requests of a
            # fresh worker included); later reads fail fast until a snapshot arrives.
            # (Not under the lock: the delivery we wait for takes it.)
            role.wait_ready(wait)
        snapshot = self._held() or self._prefork
        if snapshot is None:
            raise self.unavailable()
        return snapshot

    def _first_wait_left(self) -> float:
        now, pid = time.monotonic(), os.getpid()
        if self._first_wait is None or self._first_wait[0] != pid:
            s = self.settings
            self._first_wait = (pid, now + s.connect_timeout + s.fetch_timeout + 1.0)
        return max(0.0, self._first_wait[1] - now)

    def _load_before_fork(self) -> Snapshot:
        if self._prefork is None:
            # No thread here, not even the one that writes the cache file behind a publish
            poller = Poller(self.settings, open_local_store("memory", self.cache,
                                                            write_behind=False))
            try:
                self._prefork = poller.load_initial()
                self.last_error = poller.last_error
            finally:
                poller.client.close()
        if self._prefork is None:
            raise self.unavailable()
        return self._prefork

    def arm(self, as_mule: bool = False) -> Optional[Role]:
        """Start this process's part: on the first read, or eagerly after a fork or in a mule.
        None if it could not start (it is retried; the host's last good snapshot is served)."""
        with self._process_lock():
            own = self._own_role()
            if own is not None:
                if as_mule and claims_poller(own.facts, True):
                    own.prefer()
                return own
            server, facts = platform.current()
            if will_fork(facts):  # (a retry timer, a hook run too early): never before a fork
                return None
            options = self.options
            poller_mode = "auto" if as_mule else options.poller
            shared = shared_role((self.settings.instance_key, str(self.settings.cache_dir),
                                  options.store, poller_mode))
            with shared.arming:
                role = shared.role
                if role is None or role.pid != os.getpid():
                    role = Role(self.settings, facts,
                                server.open_store(options, facts, self.cache),
                                competes_for_poller(facts, poller_mode), shared.deliver,
                                held=lambda: shared.held, on_poller=shared.polling,
                                fallback_store=partial(open_local_store, "memory", self.cache),
                                claims=claims_poller(facts, as_mule),
                                stand_in_after=STAND_IN_GRACE if stands_in_only(
                                    facts, poller_mode) else 0.0)
                    try:
                        role.start()
                    except Exception as exc:  # noqa: BLE001 - all or nothing, then retry
                        self._arm_failed(role, exc)
                        return None
                    shared.role = role
            self._shared = shared
            self._retry.reset()
            self._retry_at = None
            self._control_reloads(shared)
            shared.subscribe(self)
            for state in self._dependents.values():
                role.report.dependent(state)
            if role.poller is not None and role.poller.last_error is not None:
                self.last_error = role.poller.last_error
            return role

    def _control_reloads(self, shared: SharedRole) -> None:
        options = self.options
        if options.reload_policy.patterns and self._reloads is None:
            server, facts = platform.current()
            key = self.settings.instance_key
            self._reloads = ReloadController(
                options.reload_policy, server.reloader(options, facts),
                is_poller=lambda: shared.role is not None and shared.role.name == "poller",
                record=ReloadRecord(self.settings.cache_dir / f"{key}.reload"),
                on_reload=partial(_count_reload, shared))

    def reload_also_on(self, patterns: Tuple[str, ...]) -> bool:
        """Add key patterns to ``reload_on`` (a bound model's ``restart=True`` fields). False if
        this Config reloads nothing (``reload="none"``)."""
        if self.options.reload == "none":
            return False
        with self._process_lock():
            policy = self.options.reload_policy
            added = tuple(p for p in patterns if p not in policy.patterns)
            if added:
                self.options = replace(self.options, reload_policy=replace(
                    policy, patterns=policy.patterns + added))
                if self._reloads is not None:
                    self._reloads.close()
                    self._reloads = None
                if self._shared is not None and self._own_role() is not None:
                    self._control_reloads(self._shared)
        return True

    def _arm_failed(self, role: Role, exc: Exception) -> None:
        try:
            role.stop()
        except Exception:  # noqa: BLE001 - tearing down what half started
            log.debug("hotconf: stopping a half-started role failed", exc_info=True)
        delay = self._retry.next_delay()
        self._retry_at = time.monotonic() + delay
        log.error("hotconf: could not start in process %d (%s: %s); serving the last good "
                  "snapshot this host has and trying again in %.0f s", os.getpid(),
                  type(exc).__name__, exc, delay)
        fallback = self.cache.load(self._held())
        if fallback is not None:
            self.deliver(fallback)
        try:
            timer = threading.Timer(delay, self._retry_arm)
            timer.daemon = True
            timer.start()
        except RuntimeError:  # no thread can start now: check() retries when it is due
            pass

    def _retry_arm(self) -> None:
        if not self._stopped and self._own_role() is None:
            self.arm()

    def deliver(self, snapshot: Snapshot) -> None:
        events = self._install(snapshot)
        reloads = self._reloads
        if reloads is not None and events:
            reloads.feed(events)

    def polling(self) -> None:
        """Called in the poller's process when it becomes the poller (or puts back a deleted
        lock file): fire a reload that fell due while another process polled (or none did)."""
        reloads = self._reloads
        if reloads is not None:
            reloads.settle_pending()

    def note_dependent(self, state: DependentState) -> None:
        """A resource or bound model changed state here: its row in ``hotconf status``."""
        self._dependents[(state.kind, state.name)] = state
        role = self._own_role()
        if role is not None:
            role.report.dependent(state)

    def after_fork_in_child(self) -> None:
        """The role's threads did not survive the fork: forget them; the next read re-arms. A
        stopped Config keeps answering from its last snapshot, in the child as in the parent."""
        self._shared = None
        self._reloads = None
        self._dependents = {}  # the parent's: a child builds and reports its own
        self._lock = None  # it may have been held by a thread of the parent
        owner = self._owner()
        if owner is not None and not self._stopped:
            owner._forget()

    def disarm_before_fork(self) -> bool:
        """This process turned out to be one that forks (a Celery worker's main process that
        read config at import, before Celery said it is one): end this Config's part here (its
        threads, its long poll; the poller lock passes to another process) and keep what it
        holds as the pre-fork snapshot, which reads keep answering. Each child arms after the
        fork. True if there was something to end."""
        with self._process_lock():
            held = self._held()
            if held is not None and held.newer_than(self._prefork):
                self._prefork = held
            shared, self._shared = self._shared, None
            reloads, self._reloads = self._reloads, None
            self._retry_at = None
        if reloads is not None:
            reloads.close()
        if shared is None or shared.role is None or shared.role.pid != os.getpid():
            return False
        shared.unsubscribe(self)  # the last one out stops the role (its threads end)
        return True

    # -- this process -----------------------------------------------------------------------------
    def _own_role(self) -> Optional[Role]:
        shared = self._shared
        role = shared.role if shared is not None else None
        return role if role is not None and role.pid == os.getpid() else None

    def check(self) -> None:
        """Swap in a newer snapshot now if the store has one (cheap: a version read). In a
        process not armed yet (a worker that has read nothing: its bound models would not
        follow releases), arm it."""
        role = self._own_role()
        if role is not None:
            role.check()
        elif self._retry_at is not None:
            if time.monotonic() >= self._retry_at:
                self._retry_arm()
        elif not self._stopped and self._owner() is not None:
            try:
                self.arm()  # (nothing in a process that will fork)
            except Exception:  # noqa: BLE001 - a request's check must not fail the request
                log.debug("hotconf: arming at a check failed", exc_info=True)

    @property
    def role(self) -> RoleName:
        role = self._own_role()
        return role.name if role is not None else "idle"

    def status(self) -> Status:
        role = self._own_role()
        if role is None:
            held = self._held()
            record = ProcessRecord(pid=os.getpid(), role="idle",
                                   version=held.version if held is not None else None,
                                   releases=held.release_keys if held is not None else {},
                                   dependents=tuple(self._dependents.values()))
            return Status(record, None, behind=False, stale=False)
        record = role.report.record
        poller = role.poller
        since = record.behind_since
        return Status(record, poller.report.health if poller is not None else None,
                      behind=since is not None,
                      stale=since is not None and time.time() - since > self.settings.stale_after)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def unavailable(self) -> ConfigUnavailableError:
        s = self.settings
        reason = str(self.last_error) if self.last_error else "no answer yet"
        cache = self.cache.path
        cached = (f"the local cache {cache} could not be used (see the log)" if cache.exists()
                  else f"there is no local cache at {cache}")
        return ConfigUnavailableError(
            f"no configuration for app {s.app_id!r} cluster {s.cluster!r}: nothing loaded from "
            f"the {s.servers_description} ({reason}) and {cached}. hotconf keeps retrying in "
            f"the background; a cache is written after the first successful load"
        )

    def stop(self) -> None:
        with self._process_lock():
            self._stopped = True
            shared, self._shared = self._shared, None
        if shared is not None and (shared.role is None or shared.role.pid == os.getpid()):
            shared.unsubscribe(self)
        if self._reloads is not None:
            self._reloads.close()


def _count_reload(shared: SharedRole, reason: str) -> None:
    role = shared.role
    if role is not None:
        role.report.reloaded(reason)


def live_bindings() -> List[Binding]:
    """Every binding of this process whose Config has not been stopped."""
    return [b for b in list(_live) if b.alive]


def arm_all(as_mule: bool = False) -> List[Binding]:
    """Arm every live Config in this process (after a fork, or in a mule). A failure is logged,
    not raised: a worker must boot even if Apollo is down; it retries on its first read."""
    armed = []
    for binding in live_bindings():
        try:
            if binding.arm(as_mule=as_mule) is not None:
                armed.append(binding)
        except Exception:  # noqa: BLE001
            log.exception("hotconf: arming app %r after fork failed; it retries on first read",
                          binding.settings.app_id)
    return armed


#: Threads that may be left running at a fork after ``disarm_all``: each waits without holding
#: a lock (in ``flock``, a queue, a timer's event) and is gone in the child. A standby blocked in
#: ``flock`` cannot be woken; it lets the lock go and ends when the poller it waits for is gone.
_IDLE_AT_FORK = ("hotconf-standby", "hotconf-listener", "hotconf-resource")


#: What else ends its threads before this process forks, with ``end_threads(deadline)``: each
#: Config's listeners (their threads start with the process's first snapshot, and would
#: otherwise stay idle through every fork of a Celery main process that read at import).
_ends_before_fork: weakref.WeakSet[Any] = weakref.WeakSet()


def end_threads_before_fork(owner: Any) -> None:
    _ends_before_fork.add(owner)


def disarm_all(wait: float = 1.0) -> List[Binding]:
    """Disarm every Config armed in this process before it forks (see ``disarm_before_fork``),
    and wait up to ``wait`` seconds for their threads to end, so that none runs at the fork."""
    disarmed = [b for b in list(_live) if b.disarm_before_fork()]
    deadline = time.monotonic() + wait
    for owner in list(_ends_before_fork):
        owner.end_threads(deadline)
    if disarmed:
        for thread in threading.enumerate():
            if thread.name.startswith("hotconf") and not thread.name.startswith(_IDLE_AT_FORK) \
                    and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
    return disarmed


def _after_fork_in_child() -> None:
    for binding in list(_live):
        binding.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
