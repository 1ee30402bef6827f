"""Electing the one poller of a host: an exclusive ``flock`` on a lock file.

The kernel releases the lock when its holder dies (SIGKILL included), so a standby process
takes over by simply trying again. A process that forks while holding the lock would share it
with its child through the inherited descriptor, so children close theirs (O_CLOEXEC covers
exec, ``after_in_child`` covers fork).
"""

from __future__ import annotations

import errno
import fcntl
import os
import weakref
from pathlib import Path
from typing import Optional

_LOCKS: weakref.WeakSet[PollerLock] = weakref.WeakSet()


class PollerLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: Optional[int] = None
        self._pid = 0
        _LOCKS.add(self)

    @property
    def held(self) -> bool:
        return self._fd is not None and self._pid == os.getpid()

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never blocks."""
        if self.held:
            return True
        self._forget()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0),
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._fd, self._pid = fd, os.getpid()
        # Who polls, for `hotconf status`; informational only (the flock is the truth).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self._pid}\n".encode(), 0)
        return True

    def release(self) -> None:
        fd = self._fd
        if fd is not None and self.held:
            os.close(fd)  # closing the descriptor drops the flock
        self._fd = None

    def _forget(self) -> None:
        """In a forked child: drop the inherited descriptor without touching the parent's lock."""
        if self._fd is not None and self._pid != os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

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


def _after_fork_in_child() -> None:
    for lock in list(_LOCKS):
        lock._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
