"""Watching one file for replacement with watchdog (inotify on Linux): the push of the file
store, and the second path of the layered store (the poller rewrites the cache file on every
release)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Optional

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

log = logging.getLogger("hotconf")

# Only events that can mean new content. Readers' own opens and reads of the file raise
# "opened" / "closed_no_write" events too: reacting to those makes every reader re-read the
# file because another one did, forever.
_CONTENT_EVENTS = frozenset({"created", "modified", "moved", "closed"})


class _Handler(FileSystemEventHandler):
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


class FileWatch:
    """Calls ``callback()`` whenever ``path`` is created, written or renamed over."""

    def __init__(self, path: Path):
        self.path = path
        self._observer: Optional[BaseObserver] = None

    def start(self, callback: Callable[[], None]) -> None:
        if self._observer is not None:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(_Handler(str(self.path), callback), str(self.path.parent),
                          recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def close(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(2)
