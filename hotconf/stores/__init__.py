"""Stores: where the poller publishes snapshots and readers find them."""

from .base import BaseStore
from .file import FileStore
from .memory import MemoryStore

__all__ = ["BaseStore", "FileStore", "MemoryStore"]
