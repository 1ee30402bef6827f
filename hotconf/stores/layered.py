"""A fast store in front of the local cache file, as one store.

Like apollo-java's chain of repositories, each hop has the same interface: ``publish`` writes
the front, whose push the workers wait for, and has the file written behind it on another
thread (``behind.py``: the file's fsyncs never delay a push, nor the next release), ``latest``
falls back to the file when the front has nothing newer (the uWSGI cache is wiped by a full
reload, or the snapshot did not fit it), and ``watch`` combines the front's push with a watch
on the file. Whoever uses the store never asks which kind it is.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from ..cache import LocalCache
from ..errors import StoreError
from ..snapshot import Snapshot
from .base import Store
from .behind import FLUSH_TIMEOUT, WriteBehind
from .file import save_if_newer
from .watch import FileWatch


class LayeredStore(Store):
    def __init__(self, front: Store, cache: LocalCache, watch_file: bool = True,
                 write_behind: bool = True):
        """``write_behind=False``: the file is written before ``publish`` returns, on the
        caller's thread (a master that will fork must start no thread: one holding the GIL
        at the fork hangs every child)."""
        super().__init__()
        self.front, self.cache = front, cache
        self.name = front.name
        self.shared = front.shared
        # One watch for the file and a front that is files too (the copy in /dev/shm).
        self._file_watch: Optional[FileWatch] = FileWatch(
            cache.path, *front.watched_files()) if watch_file else None
        front.subscribe(self._notify_local)
        self._lock = threading.Lock()
        self._file_token: Any = None
        self._on_file: Optional[Snapshot] = None  # what the file was last seen to hold
        self._named_by_front: Optional[int] = None  # the version the front sent readers to
        self._behind = WriteBehind(self._save, f"the local cache {cache.path}") \
            if write_behind else None

    def publish(self, snapshot: Snapshot) -> bool:
        # Readers' version token covers the file too, so the file event that follows is not
        # missed, and a front that refuses the snapshot still has it reach them via the file.
        try:
            taken = self.front.publish(snapshot)
        except StoreError:
            # The front refused it (too large for the uWSGI cache): this process still serves
            # it, and the others read it from the file, which the front's marker now names:
            # written now, not behind.
            self._save_or_retry(snapshot, named_by_front=True)
            self._notify_local(snapshot)
            raise
        if self._behind is not None:
            self._behind.put(snapshot)
        else:
            self._save_or_retry(snapshot)
        return taken

    def _save_or_retry(self, snapshot: Snapshot, named_by_front: bool = False) -> None:
        """Now, on this thread; if the disk refuses it, written again behind (or by the
        publisher, told by ``unwritten``, where nothing is written behind)."""
        written = self._save(snapshot, named_by_front)
        if self._behind is None:
            self.unwritten = None if written else snapshot
        elif not written:
            self._behind.put(snapshot)

    def _save(self, snapshot: Snapshot, named_by_front: bool = False) -> bool:
        """Put ``snapshot`` in the file; False if the disk refused it (to be written again)."""
        with self._lock:
            on_file = self._on_file
        if on_file is not None and on_file.newer_than(snapshot):
            return True  # never put an older snapshot on disk
        # Never rewrite the file with the releases it holds already (unless it was deleted),
        # except when the front's marker sends readers to the file for this very version:
        # they would find an older one there and never stop looking for it.
        if named_by_front:
            self._named_by_front = snapshot.version  # (kept for a write again, behind)
        elif snapshot.version == self._named_by_front:
            named_by_front = True
        if not named_by_front and snapshot.same_releases(on_file) and \
                self.cache.holds(snapshot):
            return True
        written = save_if_newer(self.cache, snapshot)
        if written is None:
            return False
        if written:
            with self._lock:
                self._on_file, self._file_token = snapshot, self.cache.token()
        return True

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        return self._behind.flush(timeout) if self._behind is not None else self.unwritten is None

    def latest(self, previous: Optional[Snapshot] = None) -> Optional[Snapshot]:
        newest = self.front.latest(previous)
        if previous is not None and newest is not None and newest.newer_than(previous):
            return newest  # the usual case: one decode per release (a first load checks both)
        # Decode the file only if it changed since this store last looked at it.
        token = self.cache.token()
        with self._lock:
            if token == self._file_token:
                return newest
            self._file_token = token
        from_file = self.cache.load(previous)
        if from_file is None:
            return newest
        with self._lock:
            self._on_file = from_file
        return from_file if newest is None or from_file.newer_than(newest) else newest

    def token(self) -> Any:
        # Both: a push may not reach this process (no uWSGI signal without a master, a lazy-app
        # without shared-import, a container that cannot see this /dev/shm), and the file
        # written behind the front must find a changed token when its own event comes.
        return self.front.token(), self.cache.token()

    def version(self) -> Optional[int]:
        versions = [v for v in (self.front.version(), self.cache.version()) if v is not None]
        return max(versions) if versions else None

    def holds(self, snapshot: Snapshot) -> bool:
        # Publishing again cannot help a front that refused the snapshot (a full /dev/shm:
        # readers follow the file meanwhile), nor a file being written behind (or again after
        # a backoff): neither is a loss for the poller's guard to repair.
        front = self.front.holds(snapshot) or self.front.unwritten is not None
        writing = self._behind is not None and self._behind.busy
        return front and (writing or self.cache.holds(snapshot))

    def watch(self, callback: Callable[[], None]) -> None:
        if not self.front.watched_files() or self._file_watch is None:
            self.front.watch(callback)
        if self._file_watch is not None:
            self._file_watch.start(callback)

    def kept_in(self) -> Tuple[List[Path], List[Path]]:
        files, dirs = self.front.kept_in()
        return [self.cache.path, *files], [self.cache.parts_dir, *dirs]

    def rewatch(self) -> None:
        self.front.rewatch()
        if self._file_watch is not None:
            self._file_watch.renew()

    def close(self) -> None:
        if self._behind is not None:  # what was published reaches the disk before the lock goes
            self._behind.close()
        self.front.close()
        if self._file_watch is not None:
            self._file_watch.close()
