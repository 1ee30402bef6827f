"""File store: a cache index and its parts, replaced atomically, as the shared snapshot.

The poller replaces the index (temp file, fsync, rename); every other process watches the
directory (inotify; see watch.py) and re-reads the index when it is replaced, so readers never
see a torn file. ``open_local_store`` puts one on /dev/shm in front of the cache file on disk
(``front.py``); alone, on the cache file, it is also the persistent last-good copy.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from ..cache import LocalCache
from ..pathlocks import lock_for
from ..snapshot import Snapshot
from .base import Store
from .watch import FileWatch


class FileStore(Store):
    name = "file"

    def __init__(self, cache: LocalCache):
        super().__init__()
        self.cache = cache
        self.path = cache.path
        self._watch = FileWatch(cache.path)

    def publish(self, snapshot: Snapshot) -> bool:
        notified: List[bool] = []

        def visible() -> None:
            # This process takes the snapshot in when the other processes can: once the
            # index is renamed into place, not after the fsync and clean-up that follow.
            notified.append(True)
            self._notify_local(snapshot)

        written = save_if_newer(self.cache, snapshot, visible)
        if written is False:
            return False  # only the same snapshot, with parts gone, is written again
        self.unwritten = None if written else snapshot
        if not notified:
            # Even when the disk refused the write (full, read-only), this process serves the
            # new snapshot from memory; the publisher writes it again until the disk takes it.
            self._notify_local(snapshot)
        return bool(written)

    def latest(self, previous: Optional[Snapshot] = None) -> Optional[Snapshot]:
        return self.cache.load(previous)

    def token(self) -> Any:
        return self.cache.token()

    def version(self) -> Optional[int]:
        return self.cache.version()

    def holds(self, snapshot: Snapshot) -> bool:
        return self.cache.holds(snapshot)

    def watch(self, callback: Callable[[], None]) -> None:
        self._watch.start(callback)

    def watched_files(self) -> List[Path]:
        return [self.path]

    def kept_in(self) -> Tuple[List[Path], List[Path]]:
        return [self.cache.path], [self.cache.parts_dir]

    def rewatch(self) -> None:
        self._watch.renew()

    def close(self) -> None:
        self._watch.close()


def save_if_newer(cache: LocalCache, snapshot: Snapshot,
                  visible: Optional[Callable[[], None]] = None) -> Optional[bool]:
    """Write ``snapshot`` to ``cache`` unless it holds one as new or newer (the same one with
    parts gone is written again): a compare-and-swap across the host's processes. True:
    written; False: refused as not newer; None: the disk refused it (logged)."""
    lock_path = cache.path.with_name(cache.path.name + ".wlock")
    with lock_for(cache.path):  # the threads of this process
        try:
            cache.prepare_write()
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                         | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError as exc:
            cache.write_failed(exc)
            return None
        try:
            # A POSIX lock (lockf), not flock: it belongs to this process, so a child forked
            # mid-write inherits the descriptor but not the lock, and cannot keep the host's
            # writers waiting for as long as it lives.
            fcntl.lockf(fd, fcntl.LOCK_EX)
            on_disk = cache.summary()  # one read of the index, before the new one
            if not snapshot.newer_than(on_disk[0]) and not cache.lost_parts_of(snapshot, on_disk):
                return False
            return True if cache.save(snapshot, visible=visible, on_disk=on_disk) else None
        finally:
            os.close(fd)
