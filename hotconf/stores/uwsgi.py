"""The uWSGI cache store: the snapshot as one value in a uWSGI ``cache2``, its version beside it.

It is handed the uWSGI API (the ``uwsgi`` module, or a fake with the same five functions) and
a push channel (the uWSGI signal) by ``servers.uwsgi``: this module imports no server.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Protocol

from ..errors import ProtocolError, SnapshotTooLargeError
from ..snapshot import Snapshot
from .base import Store

log = logging.getLogger("hotconf")


class CacheAPI(Protocol):
    """The part of the ``uwsgi`` module this store uses."""

    def lock(self) -> None: ...
    def unlock(self) -> None: ...
    def cache_get(self, key: str, cache: str) -> Optional[bytes]: ...
    def cache_update(self, key: str, value: bytes, expires: int, cache: str) -> Any: ...


class PushChannel(Protocol):
    """Tells every worker that the store changed (uWSGI: a signal raised to all workers)."""

    def notify(self) -> None: ...
    def add(self, callback: Callable[[], None]) -> bool: ...
    def remove(self, callback: Callable[[], None]) -> None: ...


class UwsgiCacheStore(Store):
    name = "uwsgi"

    def __init__(self, api: CacheAPI, push: PushChannel, cache_name: str, key: str,
                 blocksize: int, bitmap: bool = False):
        super().__init__()
        self.api, self.push = api, push
        self.cache_name, self.key, self.blocksize, self.bitmap = cache_name, key, blocksize, bitmap
        self._version_key = key + ":version"
        self._watching: Optional[Callable[[], None]] = None

    def _too_large(self, size: int) -> SnapshotTooLargeError:
        return SnapshotTooLargeError(
            f"hotconf: the snapshot is {size} bytes but the uWSGI cache '{self.cache_name}' holds "
            f"at most {self.blocksize} bytes per value (blocksize): raise it in uwsgi.ini, e.g. "
            f"cache2 = name={self.cache_name},items=16,blocksize={_round_up(size)}. Until then "
            f"workers read the snapshot from the local cache file")

    def publish(self, snapshot: Snapshot) -> bool:
        data = snapshot.to_json()
        if len(data) > self.blocksize and not self.bitmap:
            raise self._too_large(len(data))
        api = self.api
        api.lock()
        try:
            current = api.cache_get(self._version_key, self.cache_name)
            if current is not None and current.isdigit() and not snapshot.newer_than(int(current)):
                return False
            # uWSGI reports an oversized or failed write only by returning None
            if api.cache_update(self.key, data, 0, self.cache_name) is None:
                raise self._too_large(len(data))
            api.cache_update(self._version_key, str(snapshot.version).encode(), 0,
                             self.cache_name)
        finally:
            api.unlock()
        self._notify_local(snapshot)
        self.push.notify()
        return True

    def latest(self, previous: Optional[Snapshot] = None) -> Optional[Snapshot]:
        data = self.api.cache_get(self.key, self.cache_name)
        if data is None:
            return None  # empty after a full reload: the layered store falls back to the file
        try:
            return Snapshot.from_json(data, source="store", previous=previous)
        except ProtocolError as exc:
            log.warning("hotconf: unreadable snapshot in uWSGI cache '%s' (%s)", self.cache_name, exc)
            return None

    def token(self) -> Any:
        return self.api.cache_get(self._version_key, self.cache_name)

    def watch(self, callback: Callable[[], None]) -> None:
        if self._watching is None and self.push.add(callback):
            self._watching = callback

    def close(self) -> None:
        callback, self._watching = self._watching, None
        if callback is not None:
            self.push.remove(callback)


def _round_up(size: int) -> int:
    block = 65536
    while block < size * 2:
        block *= 2
    return block
