"""Waiting for the host's poller lock: one waiter per lock file and process, shared by every
Role that stands by for it.

The waiter blocks in ``flock`` (in a real OS thread under gevent, see ``blocking``), so the
kernel wakes it the moment the poller dies; it hands the lock to a Role that still wants it.
A blocked ``flock`` cannot be interrupted, so a Role that stops does not end the wait: it
leaves, and the waiter serves the next Role of the same key or, woken with nobody left, lets
the lock go and ends. However many Configs a process creates and drops, it never has more
than one waiter per lock file.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path
from typing import Dict, List, Protocol, Tuple

from ..blocking import call_blocking
from ..election import RECREATE_AFTER, PollerClaim, PollerLock

log = logging.getLogger("hotconf")

#: After declining the lock to a mule that claims it: the mule, woken with us, takes it then.
YIELD_PAUSE = 0.05


class Candidate(Protocol):
    """A Role standing by."""

    def take_lock(self, lock: PollerLock) -> bool:
        """Become the poller with ``lock`` (held); False if this Role no longer wants it."""
        ...

    def lock_replaced(self) -> None:
        """The lock file was deleted or replaced while we waited (so may the cache dir)."""
        ...


class _Waiter:
    def __init__(self, path: Path):
        self.path = path
        self.candidates: List[Candidate] = []
        self.nobody = threading.Event()  # set while no candidate waits (ends a missing-file wait)


_WAITERS: Dict[Tuple[str, int], _Waiter] = {}
_MUTEX = threading.Lock()


def stand_by(path: Path, candidate: Candidate) -> None:
    """Wait for the lock at ``path`` on behalf of ``candidate``."""
    key = (str(path), os.getpid())
    with _MUTEX:
        waiter = _WAITERS.get(key)
        start = waiter is None
        if waiter is None:
            waiter = _WAITERS[key] = _Waiter(path)
        if candidate not in waiter.candidates:
            waiter.candidates.append(candidate)
        waiter.nobody.clear()
    if start:
        threading.Thread(target=_wait, args=(waiter, key), name="hotconf-standby",
                         daemon=True).start()


def leave(path: Path, candidate: Candidate) -> None:
    with _MUTEX:
        waiter = _WAITERS.get((str(path), os.getpid()))
        if waiter is not None and candidate in waiter.candidates:
            waiter.candidates.remove(candidate)
            if not waiter.candidates:
                waiter.nobody.set()


def waiting(path: Path) -> int:
    """How many candidates of this process wait for ``path`` (for tests and status)."""
    with _MUTEX:
        waiter = _WAITERS.get((str(path), os.getpid()))
        return len(waiter.candidates) if waiter is not None else 0


def _wait(waiter: _Waiter, key: Tuple[str, int]) -> None:
    lock = PollerLock(waiter.path)
    while True:
        with _MUTEX:
            if not waiter.candidates:
                del _WAITERS[key]
                return
        try:
            fd = lock.open_for_wait(create_missing_after=RECREATE_AFTER)
            if fd is None:  # missing: the poller's guard may be putting it back
                waiter.nobody.wait(RECREATE_AFTER / 3)
                continue
            try:
                call_blocking(functools.partial(PollerLock.wait, fd))
            except BaseException:
                lock.adopt(fd, keep=False)
                raise
            if not lock.adopt(fd):
                for candidate in _candidates(waiter):
                    candidate.lock_replaced()
                continue
            handed, lock = lock, PollerLock(waiter.path)  # the next wait's, whatever happens
            if not _hand_over(waiter, handed):
                handed.release()  # woken with nobody left who wants it, or left to a mule
                if PollerClaim(waiter.path).pending():
                    waiter.nobody.wait(YIELD_PAUSE)  # not straight back into the race
        except Exception:  # noqa: BLE001 - the waiter must outlive any one failure
            log.exception("hotconf: waiting for the poller lock failed")
            waiter.nobody.wait(RECREATE_AFTER)


def _hand_over(waiter: _Waiter, lock: PollerLock) -> bool:
    """Give the held ``lock`` to the first candidate that takes it; False if none does."""
    for candidate in _candidates(waiter):
        try:
            if candidate.take_lock(lock):
                return True
        except Exception:  # noqa: BLE001 - it let the lock go and stands by again
            log.exception("hotconf: taking over polling failed; standing by again")
            waiter.nobody.wait(RECREATE_AFTER)  # no tight loop on a failure that repeats
            return True
    return False


def _candidates(waiter: _Waiter) -> List[Candidate]:
    with _MUTEX:
        return list(waiter.candidates)


def _reset_in_child() -> None:
    # The waiters' threads did not survive the fork; their descriptors are closed by
    # election's own at-fork hook. A child starts with none.
    global _MUTEX
    _MUTEX = threading.Lock()
    _WAITERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
