"""File store: the local cache file doubles as the shared snapshot.

The poller replaces the file atomically (temp file, fsync, rename); every other process watches
the directory with watchdog (inotify on Linux) and re-reads the file when it is replaced. Readers
never see a torn file, and the file is also the persistent last-good copy.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from typing import Any, Callable, Optional

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ..cache import LocalCache
from ..snapshot import Snapshot
from .base import BaseStore

log = logging.getLogger("hotconf")


# Only events that can mean new content. Readers' own opens and reads of the file raise
# "opened" / "closed_no_write" events too: reacting to those makes every reader re-read the
# file because another one did, forever.
_CONTENT_EVENTS = frozenset({"created", "modified", "moved", "closed"})


class _Watch(FileSystemEventHandler):
    def __init__(self, path: str, callback: Callable[[], None]):
        self.path, self.callback = path, callback

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CONTENT_EVENTS:
            return
        for raw in (getattr(event, "dest_path", None), event.src_path):
            if raw and os.fsdecode(raw) == self.path:
                try:
                    self.callback()
                except Exception:  # noqa: BLE001 - the observer thread must survive
                    log.exception("hotconf: reloading %s failed", self.path)
                return


class FileStore(BaseStore):
    name = "file"
    persistent = True

    def __init__(self, cache: LocalCache):
        super().__init__()
        self.cache = cache
        self.path = cache.path
        self._observer: Optional[Observer] = None
        self._write_lock = threading.Lock()

    def publish(self, snapshot: Snapshot) -> bool:
        lock_path = self.path.with_name(self.path.name + ".wlock")
        with self._write_lock:
            try:
                self.cache.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                             | getattr(os, "O_NOFOLLOW", 0), 0o600)
            except OSError as exc:
                log.warning("hotconf: cannot write to %s (%s); serving from memory",
                            self.cache.dir, exc.strerror or exc)
                self._notify_local(snapshot)
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # compare-and-swap across processes
                current = self.cache.load()
                if current is not None and snapshot.version <= current.version:
                    return False
                written = self.cache.save(snapshot)
            finally:
                os.close(fd)
        # Even when the disk refused the write (full, read-only), this process serves the new
        # snapshot from memory; the other processes get it once the disk accepts a write again.
        self._notify_local(snapshot)
        return written

    def latest(self, previous: Optional[Snapshot] = None) -> Optional[Snapshot]:
        return self.cache.load(previous)

    def token(self) -> Any:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def watch(self, callback: Callable[[], None]) -> None:
        if self._observer is not None:
            return
        self.cache.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(_Watch(str(self.path), callback), str(self.cache.dir), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def close(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(2)
