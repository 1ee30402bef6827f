"""The uWSGI cache store: a snapshot's index and one part per namespace as values of a uWSGI
``cache2``, its version beside them.

A release updates the parts that changed, then the index and the version, under the uWSGI lock.
Readers read without the lock: the index, then only the parts of namespaces that differ from
what they hold, each checked against the digest the index names (a part replaced by a newer
release in between is noticed, and the newer index read). So a one-namespace release costs
every worker one part, whatever the size of the config.

It is handed the uWSGI API (the ``uwsgi`` module, or a fake with the same four functions) and
a push channel (the uWSGI signal) by ``servers.uwsgi``: this module imports no server.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional, Protocol

from ..errors import MissingPartError, ProtocolError, SnapshotTooLargeError
from ..snapshot import Snapshot
from .base import Store

log = logging.getLogger("hotconf")

_READ_ATTEMPTS = 3


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
        # What this process last wrote under each part key, valid while the version in the
        # cache is the one it wrote (another writer, or a wiped cache, means write them all).
        self._written: Dict[str, str] = {}
        self._written_version: Optional[bytes] = None
        self._refused: Optional[int] = None  # the version this cache could not take

    def _part_key(self, namespace: str) -> str:
        return f"{self.key}:part:{namespace}"

    def _too_large(self, size: int, items: int) -> SnapshotTooLargeError:
        advice = (f"cache2 = name={self.cache_name},items={max(16, items * 2)},"
                  f"blocksize={_round_up(max(size, self.blocksize // 2))}")
        if size > self.blocksize:
            why = (f"its largest value is {size} bytes and the cache holds at most "
                   f"{self.blocksize} bytes per value (blocksize)")
        else:
            why = (f"the cache is full: this app needs {items} items (one per namespace, and two "
                   f"more), beside what other apps and the server keep there")
        return SnapshotTooLargeError(
            f"hotconf: the uWSGI cache '{self.cache_name}' did not take the snapshot: {why}. "
            f"Raise it in uwsgi.ini, e.g. {advice}. Until then workers read the snapshot from "
            f"the local cache file")

    def publish(self, snapshot: Snapshot) -> bool:
        try:
            return self._publish(snapshot)
        except SnapshotTooLargeError:
            self._refused = snapshot.version
            # Readers must still hear of it and read it from the file: the version marker
            # changes (to one that names the file) and the push goes out.
            self.api.lock()
            try:
                self.api.cache_update(self._version_key, b"file:%d" % snapshot.version, 0,
                                      self.cache_name)
            finally:
                self.api.unlock()
            self._written = {}
            self.push.notify()
            raise

    def _publish(self, snapshot: Snapshot) -> bool:
        parts = {name: ns for name, ns in snapshot.namespaces.items()}
        index = snapshot.index_json()
        if len(index) > self.blocksize and not self.bitmap:
            index = snapshot.index_json(deltas=False)  # the deltas only save readers work
        largest = max([len(index)] + [len(ns.part()) for ns in parts.values()])
        items = len(parts) + 2
        if largest > self.blocksize and not self.bitmap:
            raise self._too_large(largest, items)
        api = self.api
        api.lock()
        try:
            marker = api.cache_get(self._version_key, self.cache_name)
            current = _version_of(marker)
            if current is not None and not snapshot.newer_than(current):
                return False
            if marker != self._written_version:
                self._written = {}
            for name, ns in parts.items():
                if self._written.get(name) == ns.digest:
                    continue
                # uWSGI reports an oversized value or a full cache only by returning None
                if api.cache_update(self._part_key(name), ns.part(), 0, self.cache_name) is None:
                    self._written = {}
                    raise self._too_large(largest, items)
                self._written[name] = ns.digest
            version = str(snapshot.version).encode()
            if (api.cache_update(self.key, index, 0, self.cache_name) is None
                    or api.cache_update(self._version_key, version, 0, self.cache_name) is None):
                self._written = {}
                raise self._too_large(largest, items)
            self._written_version = version
        finally:
            api.unlock()
        self.push.notify()  # the workers first: this process's own listeners can wait
        self._notify_local(snapshot)
        return True

    def _read_part(self, namespace: str, digest: str) -> Optional[bytes]:
        return self.api.cache_get(self._part_key(namespace), self.cache_name)

    def latest(self, previous: Optional[Snapshot] = None) -> Optional[Snapshot]:
        for _ in range(_READ_ATTEMPTS):
            data = self.api.cache_get(self.key, self.cache_name)
            if data is None:
                return None  # empty after a full reload: the layered store falls back to the file
            try:
                return Snapshot.decode(data, self._read_part, source="store", previous=previous)
            except MissingPartError:
                continue  # a newer release replaced a part while we read: read its index
            except ProtocolError as exc:
                log.warning("hotconf: unreadable snapshot in uWSGI cache '%s' (%s)",
                            self.cache_name, exc)
                return None
        return None  # the file behind this store is read instead

    def token(self) -> Any:
        return self.api.cache_get(self._version_key, self.cache_name)

    def version(self) -> Optional[int]:
        return _version_of(self.token())

    def holds(self, snapshot: Snapshot) -> bool:
        # A snapshot this cache refused is not "lost": putting it back would only fail again.
        return snapshot.version == self._refused or self.token() is not None

    def watch(self, callback: Callable[[], None]) -> None:
        if self._watching is None and self.push.add(callback):
            self._watching = callback

    def close(self) -> None:
        callback, self._watching = self._watching, None
        if callback is not None:
            self.push.remove(callback)


def _version_of(marker: Optional[bytes]) -> Optional[int]:
    """The version in the marker: ``b"123"`` (the cache holds it) or ``b"file:123"`` (too large
    for the cache: the file holds it)."""
    if marker is None:
        return None
    digits = marker[5:] if marker.startswith(b"file:") else marker
    return int(digits) if digits.isdigit() else None


def _round_up(size: int) -> int:
    block = 65536
    while block < size * 2:
        block *= 2
    return block
