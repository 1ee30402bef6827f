"""One role per process for equal Configs.

Configs that fetch the same thing the same way (instance key, cache dir, store, poller mode)
share one role in a process: one poller or one reader with one watcher, however many Config
objects a program makes (one per request by mistake, one per module). Each Config's binding
subscribes weakly: a Config that is dropped is unsubscribed when it is collected, and the role
stops when its last subscriber is gone, so nothing leaks (threads, descriptors, inotify).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from typing import Dict, List, Optional, Protocol, Tuple

from ..snapshot import Snapshot
from .role import Role

log = logging.getLogger("hotconf")

#: Equal Configs share a role: (instance key, cache dir, store, poller mode)
Key = Tuple[str, str, str, str]

#: How many live Configs for one key before hotconf says the program makes too many
MANY = 8


class Subscriber(Protocol):
    def deliver(self, snapshot: Snapshot) -> None: ...

    def polling(self) -> None: ...


class SharedRole:
    def __init__(self, key: Key):
        self.key = key
        self.role: Optional[Role] = None
        self.held: Optional[Snapshot] = None
        self._subscribers: List[weakref.ReferenceType[Subscriber]] = []
        # Lock order: arming -> delivering -> _lock. Starting a role delivers (its first load,
        # a watcher's event) before start() returns, so arming must not be _lock.
        self.arming = threading.RLock()  # one process builds and starts the role
        self._delivering = threading.RLock()  # held across a whole fan-out: order
        self._lock = threading.RLock()  # the subscriber list and what is held
        self._warned = False

    # -- what the role calls ----------------------------------------------------------------------
    def deliver(self, snapshot: Snapshot) -> None:
        """From any of the paths a snapshot arrives by (the poller's publish, the store's push,
        the standby's check, a request's check): one at a time and only forward, so every
        Config installs, tells its listeners and feeds its reload policy in version order."""
        with self._delivering:
            with self._lock:
                if self.held is not None and not snapshot.newer_than(self.held):
                    return
                self.held = snapshot
                subscribers = [s for s in (ref() for ref in self._subscribers) if s is not None]
            for subscriber in subscribers:
                self._deliver_to(subscriber, snapshot)

    def polling(self) -> None:
        """This process polls (it just became the poller, or put its lock file back): subscribers
        fire a reload owed on the host (see hotconf.reload.record)."""
        with self._lock:
            subscribers = [s for s in (ref() for ref in self._subscribers) if s is not None]
        for subscriber in subscribers:
            try:
                subscriber.polling()
            except Exception:  # noqa: BLE001
                log.exception("hotconf: firing an owed reload failed")

    @staticmethod
    def _deliver_to(subscriber: Subscriber, snapshot: Snapshot) -> None:
        try:
            subscriber.deliver(snapshot)
        except Exception:  # noqa: BLE001 - one Config's failure must not starve the others
            log.exception("hotconf: delivering a snapshot failed")

    # -- subscribers --------------------------------------------------------------------------------
    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers = [r for r in self._subscribers if r() is not None]
            if any(r() is subscriber for r in self._subscribers):
                return
            self._subscribers.append(weakref.ref(subscriber, self._collected))
            count, held = len(self._subscribers), self.held
            if count > MANY and not self._warned:
                self._warned = True
                log.warning("hotconf: %d Config objects for %s are alive in process %d: create "
                            "one at module level and share it (equal Configs share one poller "
                            "and watcher, but each costs its own reads)", count, self.key[0],
                            os.getpid())
        if held is not None:
            with self._delivering:
                self._deliver_to(subscriber, self.held or held)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers = [r for r in self._subscribers
                                 if r() is not None and r() is not subscriber]
        self._stop_if_unused()

    def _collected(self, _ref: object) -> None:
        # Called by the garbage collector, on whatever thread it runs: stop off that thread.
        # Not while the interpreter exits: a thread started then never runs, and start() waits.
        if sys.is_finalizing():
            return
        try:
            threading.Thread(target=self._stop_if_unused, name="hotconf-release",
                             daemon=True).start()
        except RuntimeError:  # no new thread now (interpreter shutdown): the process is ending
            pass

    def _stop_if_unused(self) -> None:
        with self._lock:
            if any(r() is not None for r in self._subscribers):
                return
            role, self.role = self.role, None
            _forget(self)
        if role is not None and role.pid == os.getpid():
            role.stop()


_shared: Dict[Key, SharedRole] = {}
_shared_pid = 0
_shared_lock = threading.Lock()


def shared_role(key: Key) -> SharedRole:
    """This process's shared role for ``key`` (a forked child starts with none)."""
    global _shared_pid
    with _shared_lock:
        if _shared_pid != os.getpid():
            _shared.clear()
            _shared_pid = os.getpid()
        found = _shared.get(key)
        if found is None:
            found = _shared[key] = SharedRole(key)
        return found


def _forget(shared: SharedRole) -> None:
    with _shared_lock:
        if _shared.get(shared.key) is shared:
            del _shared[shared.key]


def _reset_in_child() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()  # it may have been held by another thread at fork time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)

__all__: List[str] = ["Key", "SharedRole", "shared_role"]
