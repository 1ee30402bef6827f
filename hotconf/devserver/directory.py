"""Directory mode: ``DIR/{appId}/{cluster}/{namespace}`` files are releases.

Every file is published at start; editing, creating, renaming or deleting one publishes again
(after a short settle, and only when the content really changed), so a text editor is the
admin UI. ``application.properties`` is the properties namespace ``application``; any other
file (``db.yaml``, ``flags.json``) is published as its ``content``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Dict, Optional, Tuple

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from ..formats import format_of
from ..options import NAME_PATTERN
from .properties import parse_properties
from .state import DevState, strip_properties

log = logging.getLogger("hotconf.devserver")

SETTLE_SECONDS = 0.15
Key = Tuple[str, str, str]


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.endswith(("~", ".swp", ".swx", ".tmp", ".bak"))


def configurations_of(path: Path, namespace: str) -> Dict[str, str]:
    text = path.read_text(encoding="utf-8")
    if format_of(namespace).is_properties:
        return parse_properties(text)
    return {"content": text}


class DirectoryPublisher(FileSystemEventHandler):
    def __init__(self, root: Path, state: DevState):
        self.root = Path(root).resolve()
        self.state = state
        self._published: Dict[Key, Dict[str, str]] = {}
        self._lock = threading.Lock()
        self._timers: Dict[Path, threading.Timer] = {}
        self._observer: Optional[BaseObserver] = None

    def _key_of(self, path: Path) -> Optional[Key]:
        try:
            rel = path.resolve().relative_to(self.root)
        except ValueError:
            return None
        parts = rel.parts
        if len(parts) != 3 or any(_ignored(p) for p in parts):
            return None
        app, cluster, filename = parts
        namespace = strip_properties(filename)
        if not all(NAME_PATTERN.match(p) for p in (app, cluster, namespace)):
            return None
        return app, cluster, namespace

    def sync(self, path: Path) -> None:
        key = self._key_of(path)
        if key is None:
            return
        app, cluster, namespace = key
        with self._lock:
            if not path.is_file():
                if self._published.pop(key, None) is not None:
                    self.state.delete(app, cluster, namespace)
                    log.info("hotconf serve: %s removed -> %s/%s/%s unpublished", path, *key)
                return
            try:
                values = configurations_of(path, namespace)
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("hotconf serve: cannot read %s (%s); not published", path, exc)
                return
            if self._published.get(key) == values:
                return
            release_key, nid = self.state.publish(app, cluster, namespace, values)
            self._published[key] = values
            log.info("hotconf serve: published %s/%s/%s (release %s, id %d)",
                     app, cluster, namespace, release_key, nid)

    def scan(self) -> int:
        count = 0
        for path in sorted(self.root.glob("*/*/*")):
            if path.is_file() and self._key_of(path) is not None:
                self.sync(path)
                count += 1
        return count

    # watchdog callbacks: settle a burst of events on one file into one publish
    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in ("opened", "closed_no_write"):
            return  # our own reads of the file raise these
        for raw in {getattr(event, "src_path", None), getattr(event, "dest_path", None)}:
            if raw:
                self._schedule(Path(raw.decode() if isinstance(raw, bytes) else raw))

    def _schedule(self, path: Path) -> None:
        with self._lock:
            old = self._timers.pop(path, None)
            if old is not None:
                old.cancel()
            timer = threading.Timer(SETTLE_SECONDS, self.sync, args=(path,))
            timer.daemon = True
            self._timers[path] = timer
            timer.start()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.scan()
        self._observer = Observer()
        self._observer.schedule(self, str(self.root), recursive=True)
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
