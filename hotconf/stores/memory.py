"""In-process store: one process that polls for itself and shares with nobody."""

from __future__ import annotations

import threading
from typing import Any, Optional

from ..snapshot import Snapshot
from .base import BaseStore


class MemoryStore(BaseStore):
    name = "memory"

    def __init__(self) -> None:
        super().__init__()
        self._snapshot: Optional[Snapshot] = None
        self._lock = threading.Lock()

    def publish(self, snapshot: Snapshot) -> bool:
        with self._lock:
            current = self._snapshot
            if current is not None and snapshot.version <= current.version:
                return False  # versions only move forward
            self._snapshot = snapshot
        self._notify_local(snapshot)
        return True

    def latest(self, previous: Optional[Snapshot] = None) -> Optional[Snapshot]:
        return self._snapshot

    def token(self) -> Any:
        snapshot = self._snapshot
        return snapshot.version if snapshot is not None else None
