"""In-process store: the single-process case (nothing forks, the process polls itself)."""

from __future__ import annotations

import logging
import threading
from typing import Callable, List, Optional

from ..snapshot import Snapshot

log = logging.getLogger("hotconf")


class MemoryStore:
    def __init__(self) -> None:
        self._snapshot: Optional[Snapshot] = None
        self._lock = threading.Lock()
        self._subscribers: List[Callable[[Snapshot], None]] = []

    def publish(self, snapshot: Snapshot) -> bool:
        with self._lock:
            current = self._snapshot
            if current is not None and snapshot.version <= current.version:
                return False  # versions only move forward
            self._snapshot = snapshot
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(snapshot)
            except Exception:  # noqa: BLE001 - one bad subscriber must not stop the publish
                log.exception("hotconf: a snapshot subscriber failed")
        return True

    def latest(self) -> Optional[Snapshot]:
        return self._snapshot

    def subscribe(self, callback: Callable[[Snapshot], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)
