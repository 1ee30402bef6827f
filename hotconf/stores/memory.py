"""In-process store: one process that polls for itself and shares with nobody."""

from __future__ import annotations

import threading
from typing import Any, Optional

from ..snapshot import Snapshot
from .base import Store


class MemoryStore(Store):
    name = "memory"
    shared = False

    def __init__(self) -> None:
        super().__init__()
        self._snapshot: Optional[Snapshot] = None
        self._lock = threading.Lock()

    def publish(self, snapshot: Snapshot) -> bool:
        with self._lock:
            if not snapshot.newer_than(self._snapshot):
                return False
            self._snapshot = snapshot
        self._notify_local(snapshot)
        return True

    def latest(self, previous: Optional[Snapshot] = None) -> Optional[Snapshot]:
        return self._snapshot

    def token(self) -> Any:
        snapshot = self._snapshot
        return snapshot.version if snapshot is not None else None
