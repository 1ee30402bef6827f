"""A fast store in front of the local cache file, as one store.

Like apollo-java's chain of repositories, each hop has the same interface: ``publish`` writes
through (the front first, so its push is not delayed by the file's fsyncs), ``latest``
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
from .watch import FileWatch


class LayeredStore(Store):
    def __init__(self, front: Store, cache: LocalCache, watch_file: bool = True):
        super().__init__()
        self.front, self.cache = front, cache
        self.name = front.name
        self.shared = front.shared
        self._file_watch: Optional[FileWatch] = FileWatch(cache.path) if watch_file else None
        front.subscribe(self._notify_local)
        self._lock = threading.Lock()
        self._file_token: Any = None
        self._on_file: Optional[Snapshot] = None  # what the file was last seen to hold

    def publish(self, snapshot: Snapshot) -> bool:
        # The front first: its push reaches the workers without waiting for the file's fsyncs.
        # Readers' version token covers the file too, so the file event that follows is not
        # missed, and a front that refuses the snapshot still has it reach them via the file.
        try:
            taken = self.front.publish(snapshot)
        except StoreError:
            # The front refused it (too large for the uWSGI cache): this process still serves
            # it, and the others read it from the file, which the front's marker now names.
            self._save(snapshot, named_by_front=True)
            self._notify_local(snapshot)
            raise
        self._save(snapshot)
        return taken

    def _save(self, snapshot: Snapshot, named_by_front: bool = False) -> None:
        with self._lock:
            on_file = self._on_file
        if on_file is not None and on_file.newer_than(snapshot):
            return  # never put an older snapshot on disk
        # Never rewrite the file with the releases it holds already (unless it was deleted),
        # except when the front's marker sends readers to the file for this very version:
        # they would find an older one there and never stop looking for it.
        if not named_by_front and snapshot.same_releases(on_file) and \
                self.cache.holds(snapshot):
            self.unwritten = None
        elif self.cache.save(snapshot):
            self.unwritten = None
            with self._lock:
                self._on_file, self._file_token = snapshot, self.cache.token()
        else:
            self.unwritten = snapshot

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
        # without shared-import) and the file is written before the front, so a file event
        # must find a changed token even while the front's is still the old one.
        return self.front.token(), self.cache.token()

    def version(self) -> Optional[int]:
        versions = [v for v in (self.front.version(), self.cache.version()) if v is not None]
        return max(versions) if versions else None

    def holds(self, snapshot: Snapshot) -> bool:
        return self.cache.holds(snapshot) and self.front.holds(snapshot)

    def watch(self, callback: Callable[[], None]) -> None:
        self.front.watch(callback)
        if self._file_watch is not None:
            self._file_watch.start(callback)

    def kept_in(self) -> Tuple[List[Path], List[Path]]:
        return [self.cache.path], [self.cache.parts_dir]

    def rewatch(self) -> None:
        if self._file_watch is not None:
            self._file_watch.renew()

    def close(self) -> None:
        self.front.close()
        if self._file_watch is not None:
            self._file_watch.close()
