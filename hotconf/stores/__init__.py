"""Stores: where the poller publishes snapshots and readers find them."""

from .base import SnapshotStore
from .memory import MemoryStore

__all__ = ["MemoryStore", "SnapshotStore"]
