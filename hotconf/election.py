"""Electing the one poller of a host: an exclusive ``flock`` on a lock file.

The kernel releases the lock when its holder dies (SIGKILL included) and wakes the processes
waiting for it, so a standby takes over at once by waiting in ``flock`` (``open_for_wait`` then
``adopt``), with no timer. A process that forks while holding the lock would share it
with its child through the inherited descriptor, so children close theirs (O_CLOEXEC covers
exec, ``after_in_child`` covers fork).

A lock file can be deleted under a running poller (a tmp cleaner, a deploy that wipes the cache
dir): the poller still holds the deleted file, and a standby that created a new one would hold
another. So a lock counts only while its path still names the file locked (``still_ours``);
standbys do not create a missing lock file until it has been missing for a while, and the
poller's guard (``reassert``) puts a new one in place first.

A uWSGI mule is the host's preferred poller: while it stands by it holds a second lock, the
claim (``PollerClaim``), and a worker polling in its stead (the mule died, uWSGI respawns it in
half a second to a second) hands the role back when it sees the claim. The claim is a lock, not
a pid in a file, so a claimant that died never blocks anyone: the kernel lets go of it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Callable, Optional, Tuple

_LOCKS: weakref.WeakSet[PollerLock] = weakref.WeakSet()

#: How long a standby leaves a missing lock file to the poller that may still be running.
RECREATE_AFTER = 3.0


class PollerLock:
    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self._fd: Optional[int] = None
        self._pid = 0
        self._waiting: Optional[Tuple[int, int]] = None  # (fd, pid) of a blocked standby
        self._mutex = threading.Lock()
        self._clock = clock
        self._missing_since: Optional[float] = None
        _LOCKS.add(self)

    @property
    def held(self) -> bool:
        return self._fd is not None and self._pid == os.getpid()

    def try_acquire(self, create_missing_after: float = 0.0) -> bool:
        """Take the lock if nobody holds it; never blocks. A missing lock file is created at
        once, or (for a standby) only once it has been missing ``create_missing_after`` s."""
        if self.held:
            return True
        fd = self._open(create_missing_after)
        if fd is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        if not _names(self.path, fd):  # deleted or replaced between our open and our lock
            os.close(fd)
            return False
        self._take(fd)
        return True

    def check_usable(self) -> None:
        """Raise OSError if the lock file cannot be opened or created (as ``try_acquire``
        would), without taking the lock."""
        fd = self._open(0.0)
        if fd is not None:
            os.close(fd)

    def open_for_wait(self, create_missing_after: float = RECREATE_AFTER) -> Optional[int]:
        """A descriptor of the lock file for a standby to wait on (``wait`` then ``adopt``);
        None while the file is missing and younger than ``create_missing_after`` s of absence."""
        fd = self._open(create_missing_after)
        if fd is not None:
            self._waiting = (fd, os.getpid())
        return fd

    def _open(self, create_missing_after: float) -> Optional[int]:
        """The lock file, opened (never following a link); a missing one is created once it
        has been missing ``create_missing_after`` s, else None."""
        self._forget()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            now = self._clock()
            if self._missing_since is None:
                self._missing_since = now
            if now - self._missing_since < create_missing_after:
                return None
            fd = os.open(self.path, flags | os.O_CREAT, 0o600)
        self._missing_since = None
        return fd

    @staticmethod
    def wait(fd: int) -> None:
        """Block until the lock on ``fd`` is ours: the kernel wakes us when the holder dies or
        lets go. The one blocking call (see ``blocking.call_blocking``)."""
        fcntl.flock(fd, fcntl.LOCK_EX)

    def adopt(self, fd: int, keep: bool = True) -> bool:
        """After ``wait(fd)``: hold the lock if ``keep`` and the path still names the file
        locked (it may have been deleted or replaced while we waited); else let go."""
        waiting, self._waiting = self._waiting, None
        if waiting is not None and waiting[1] != os.getpid():
            return False  # forked while waiting: that descriptor is the parent's
        if not keep or not _names(self.path, fd):
            os.close(fd)
            return False
        self._take(fd)
        return True

    def _take(self, fd: int) -> None:
        """Hold the lock on ``fd``: write our pid while the descriptor is still ours alone,
        then publish it (from then on ``release`` in another thread may close it)."""
        pid = os.getpid()
        # Who polls, for `hotconf status`; informational only (the flock is the truth).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{pid}\n".encode(), 0)
        with self._mutex:
            self._fd, self._pid = fd, pid

    def still_ours(self) -> bool:
        """Held, and the path still names the file we locked."""
        fd = self._fd
        return fd is not None and self.held and _names(self.path, fd)

    def reassert(self) -> bool:
        """The poller's guard: if the lock file was deleted or replaced, lock the file now at
        the path (creating it); False if another process holds that one (step down)."""
        if self.still_ours():
            return True
        old, self._fd = self._fd, None
        try:
            return self.try_acquire()
        finally:
            if old is not None:
                os.close(old)  # only after trying: never a moment with nothing held

    def release(self) -> None:
        with self._mutex:  # stop() and a takeover being abandoned may both let go
            fd, self._fd = self._fd, None
        if fd is not None and self._pid == os.getpid():
            os.close(fd)  # closing the descriptor drops the flock

    def _forget(self) -> None:
        """In a forked child: drop the inherited descriptors (held, or waited on by the
        parent's standby) without touching the parent's lock."""
        if self._pid != os.getpid():
            self._mutex = threading.Lock()  # another thread may have held it at the fork
        if self._fd is not None and self._pid != os.getpid():
            _close_quietly(self._fd)
            self._fd = None
        waiting = self._waiting
        if waiting is not None and waiting[1] != os.getpid():
            # Kept open, the child would share the lock the parent's standby is about to get.
            _close_quietly(waiting[0])
            self._waiting = None

    def holder_pid(self) -> Optional[int]:
        """The pid written by the last holder, if the lock is held now."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None  # nobody holds it
            except OSError:
                pass
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else None
        finally:
            os.close(fd)


class PollerClaim:
    """The claim a preferred candidate (a mule) holds while it stands by for the lock at
    ``lock_path``: an exclusive ``flock`` on ``{key}.poller.claim``. Others ask ``pending()``;
    a poller that yields watches the file for the claimant's write (``stake`` writes after
    locking, so whoever is woken by it sees the claim)."""

    def __init__(self, lock_path: Path):
        lock_path = Path(lock_path)
        stem = lock_path.name[:-len(".lock")] if lock_path.name.endswith(".lock") else \
            lock_path.name
        self.path = lock_path.with_name(stem + ".claim")
        self._fd: Optional[int] = None
        self._pid = 0
        _CLAIMS.add(self)

    @property
    def staked(self) -> bool:
        return self._fd is not None and self._pid == os.getpid()

    def stake(self) -> bool:
        """Claim the lock (idempotent); False if another claimant holds the claim."""
        if self.staked:
            return True
        self._forget()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC |
                     getattr(os, "O_NOFOLLOW", 0), 0o600)
        for attempt in range(5):  # a ``pending()`` check holds it shared for a moment
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                time.sleep(0.002 * (attempt + 1))
        else:
            os.close(fd)
            return False
        pid = os.getpid()
        self._fd, self._pid = fd, pid
        # The write is the event a yielding poller's watch wakes on, after the lock is ours.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{pid}\n".encode(), 0)
        return True

    def withdraw(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and self._pid == os.getpid():
            _close_quietly(fd)

    def pending(self) -> bool:
        """Does a claimant (another process) stand by for the lock now?"""
        if self.staked:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
        finally:
            os.close(fd)  # drops our shared lock, if we got it
        return False

    def _forget(self) -> None:
        if self._fd is not None and self._pid != os.getpid():
            _close_quietly(self._fd)  # the parent's claim, inherited by a fork
            self._fd = None


_CLAIMS: weakref.WeakSet[PollerClaim] = weakref.WeakSet()


def _names(path: Path, fd: int) -> bool:
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _after_fork_in_child() -> None:
    for lock in list(_LOCKS):
        lock._forget()
    for claim in list(_CLAIMS):
        claim._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
