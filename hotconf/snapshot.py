"""Immutable snapshots of an app's namespaces (pure).

A ``Snapshot`` is what the poller publishes and every reader holds: all namespaces of one
app/cluster, each with its configurations, release key and notification id. It is never
modified; a release produces a new snapshot that shares the unchanged namespaces with the old
one, so a one-namespace release re-parses one namespace.
"""

from __future__ import annotations

import hashlib
import json
import time
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterator, List, Literal, Mapping, Optional, Union

from .changes import ChangeEvent, diff_values
from .deltas import MAX_INDEX_DELTAS, apply_delta, delta_between, delta_size
from .errors import MissingPartError, ProtocolError
from .formats import Format, format_of, parse_content, resolve_path

SNAPSHOT_FORMAT = "hotconf-snapshot/1"  # one document holding everything (still read)
#: An index (versions, release keys, one digest per namespace) whose namespaces travel as
#: separate parts: a one-namespace release rewrites, and makes readers decode, one part.
INDEX_FORMAT = "hotconf-snapshot/2"


def part_digest(part: bytes) -> str:
    return hashlib.blake2b(part, digest_size=16).hexdigest()

#: Where a snapshot came from, as a process holds it:
#: ``"remote"`` fetched from the config service by this process (it is the poller);
#: ``"cache"`` read from the local cache file (a poller starting while the config service is
#: unreachable, or a reader following the file store);
#: ``"store"`` read from the shared uWSGI cache by a reader.
Source = Literal["remote", "cache", "store"]
#: ``Config.source``: a ``Source``, or ``"none"`` before the first load in a process.
SourceName = Literal["remote", "cache", "store", "none"]


class NamespaceSnapshot(Mapping[str, str]):
    """One namespace at one release: a read-only mapping of its (flattened) keys.

    ``content`` is the file text of non-properties namespaces, ``parsed`` the parsed json/yaml
    document, ``release_key`` the Apollo release, ``found`` False while the namespace has no
    release (the server answered 404).
    """

    __slots__ = (
        "name", "format", "configurations", "release_key", "notification_id", "found",
        "content", "parsed", "_values", "_part", "_digest",
    )
    name: str
    format: Format
    configurations: Mapping[str, str]
    release_key: Optional[str]
    notification_id: int
    found: bool
    content: Optional[str]
    parsed: Any
    _values: Dict[str, str]
    _part: Optional[bytes]
    _digest: Optional[str]

    def __init__(
        self,
        name: str,
        configurations: Mapping[str, str],
        release_key: Optional[str],
        notification_id: int = -1,
        found: bool = True,
        part: Optional[bytes] = None,
    ):
        """``part``: ``configurations`` as a JSON object, as the config service sent it (the
        poller keeps it as the namespace's part rather than encode it again)."""
        fmt = format_of(name)
        content, parsed, values = parse_content(fmt, configurations)  # may raise FormatError
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "format", fmt)
        set_(self, "configurations", MappingProxyType(dict(configurations)))
        set_(self, "release_key", release_key)
        set_(self, "notification_id", notification_id)
        set_(self, "found", found)
        set_(self, "content", content)
        set_(self, "parsed", parsed)
        set_(self, "_values", values)
        set_(self, "_part", part)
        set_(self, "_digest", None)

    @classmethod
    def missing(cls, name: str) -> NamespaceSnapshot:
        return cls(name, {}, None, found=False)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("NamespaceSnapshot is immutable")

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def get(self, key: str, default: Any = None) -> Any:  # noqa: D401 - Mapping.get, faster
        return self._values.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def getter(self) -> Callable[[str, Any], Any]:
        """The bound ``get`` of the values: what Config's hot path calls."""
        return self._values.get

    def lookup(self, path: str) -> Any:
        """A value or a whole subtree of a json/yaml namespace by dotted path."""
        if path in self._values:
            return self._values[path]
        if self.format.is_structured and self.parsed is not None:
            return resolve_path(self.parsed, path)
        raise KeyError(path)

    def with_notification_id(self, notification_id: int) -> NamespaceSnapshot:
        if notification_id == self.notification_id:
            return self
        clone = object.__new__(NamespaceSnapshot)
        for slot in NamespaceSnapshot.__slots__:
            object.__setattr__(clone, slot, getattr(self, slot))
        object.__setattr__(clone, "notification_id", notification_id)
        return clone

    def same_release(self, other: Optional[NamespaceSnapshot]) -> bool:
        """The one rule for "nothing changed": same release key, same presence, same values."""
        return other is not None and self.is_release(other.release_key, other.found,
                                                     other.configurations)

    def is_release(self, release_key: Optional[str], found: bool,
                   configurations: Mapping[str, str]) -> bool:
        return (found == self.found and release_key == self.release_key
                and self.configurations == configurations)

    # -- as a part of a split snapshot ----------------------------------------------------------
    def part(self) -> bytes:
        """The configurations as stored in a part: a JSON object, as the config service sent
        it or encoded here (once per namespace object). Once encoded here, ``digest`` names
        these bytes, whatever part it was decoded from (which may have been formatted
        differently): a store writes ``parts()`` before the index."""
        part = self._part
        if part is None:
            try:
                part = json.dumps(dict(self.configurations), ensure_ascii=False,
                                  separators=(",", ":")).encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate ("\\ud83d" in the answer)
                part = json.dumps(dict(self.configurations), separators=(",", ":")).encode()
            # The digest first: a thread that sees the part then sees the digest that names it
            # (``with_notification_id`` copies ``_part`` before ``_digest``).
            object.__setattr__(self, "_digest", part_digest(part))
            object.__setattr__(self, "_part", part)
        return part

    @property
    def digest(self) -> str:
        """Names the part: equal digests, equal content."""
        digest = self._digest
        if digest is None:
            digest = part_digest(self.part())
            object.__setattr__(self, "_digest", digest)
        return digest

    def to_dict(self) -> Dict[str, Any]:
        return {
            "configurations": dict(self.configurations),
            "release_key": self.release_key,
            "notification_id": self.notification_id,
            "found": self.found,
        }

    def __repr__(self) -> str:
        return (
            f"NamespaceSnapshot({self.name!r}, {len(self._values)} keys, "
            f"release_key={self.release_key!r})"
        )


class Snapshot:
    """All namespaces of one app and cluster at one moment; ``version`` only moves forward."""

    __slots__ = ("app_id", "cluster", "namespaces", "version", "created_at", "source", "_deltas")
    app_id: str
    cluster: str
    namespaces: Mapping[str, NamespaceSnapshot]
    version: int
    created_at: float
    source: Source
    _deltas: Dict[str, Dict[str, Any]]

    def __init__(
        self,
        app_id: str,
        cluster: str,
        namespaces: Mapping[str, NamespaceSnapshot],
        version: int = 0,
        created_at: Optional[float] = None,
        source: Source = "remote",
        deltas: Optional[Mapping[str, Dict[str, Any]]] = None,
    ):
        """``deltas``: for namespaces this snapshot changed, what turns the part a reader holds
        into the new one (see ``deltas.py``); travels inline in the index."""
        set_ = object.__setattr__
        set_(self, "app_id", app_id)
        set_(self, "cluster", cluster)
        set_(self, "namespaces", MappingProxyType(dict(namespaces)))
        set_(self, "version", version)
        set_(self, "created_at", time.time() if created_at is None else created_at)
        set_(self, "source", source)
        set_(self, "_deltas", dict(deltas or {}))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Snapshot is immutable")

    def replace(self, updates: Mapping[str, NamespaceSnapshot], source: Source = "remote",
                version: Optional[int] = None) -> Snapshot:
        merged = dict(self.namespaces)
        merged.update(updates)
        deltas = {}
        for name, ns in updates.items():
            before = self.namespaces.get(name)
            if before is not None and before is not ns and before.found and ns.found:
                delta = delta_between(before.configurations, ns.configurations, before.digest,
                                      len(ns.part()))
                if delta is not None:
                    deltas[name] = delta
        return Snapshot(
            self.app_id, self.cluster, merged,
            version=self.version + 1 if version is None else version, source=source,
            deltas=deltas,
        )

    @property
    def release_keys(self) -> Dict[str, Optional[str]]:
        return {name: ns.release_key for name, ns in self.namespaces.items()}

    def newer_than(self, other: Union[Snapshot, int, None]) -> bool:
        """The one rule for ordering: versions only move forward. ``other`` is a snapshot, a
        version number (a store's cheap marker) or None (nothing held yet)."""
        if other is None:
            return True
        return self.version > (other if isinstance(other, int) else other.version)

    def same_releases(self, other: Optional[Snapshot]) -> bool:
        """Every namespace at the same release as in ``other`` (whatever the versions)."""
        if other is None or set(other.namespaces) != set(self.namespaces):
            return False
        return all(ns.same_release(other.namespaces[name]) for name, ns in self.namespaces.items())

    # -- the codec: how a snapshot travels through a store or the cache file -----------------
    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: Union[bytes, str], source: Source = "cache",
                  previous: Optional[Snapshot] = None) -> Snapshot:
        """Decode ``to_json()`` output; ProtocolError if it is not a snapshot document."""
        try:
            document = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ProtocolError(f"not a {SNAPSHOT_FORMAT} document ({exc})") from None
        return cls.from_dict(document, source=source, previous=previous)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "app_id": self.app_id,
            "cluster": self.cluster,
            "version": self.version,
            "created_at": self.created_at,
            "namespaces": {name: ns.to_dict() for name, ns in self.namespaces.items()},
        }

    @classmethod
    def from_dict(cls, data: Any, source: Source = "cache",
                  previous: Optional[Snapshot] = None) -> Snapshot:
        """Rebuild from ``to_dict()`` output; ProtocolError if the shape is wrong.

        Namespaces whose release is the same as in ``previous`` are reused, not parsed again:
        a release of one namespace costs a reader one parse. A namespace whose content no
        longer parses is dropped rather than failing the whole snapshot.
        """
        if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
            raise ProtocolError(f"not a {SNAPSHOT_FORMAT} document")
        app_id, cluster, version, raw, created_at = _header(data)
        namespaces = {}
        for name, item in raw.items():
            if not isinstance(item, dict):
                raise ProtocolError(f"snapshot namespace {name!r} is not an object")
            confs, key = item.get("configurations"), item.get("release_key")
            nid, found = item.get("notification_id", -1), item.get("found", True)
            if (
                not isinstance(confs, dict)
                or not all(isinstance(v, str) for v in confs.values())
                or not (key is None or isinstance(key, str))
                or not isinstance(nid, int) or not isinstance(found, bool)
            ):
                raise ProtocolError(f"snapshot namespace {name!r} has the wrong shape")
            before = previous.namespaces.get(name) if previous is not None else None
            if before is not None and before.is_release(key, found, confs):
                namespaces[name] = before.with_notification_id(nid)
                continue
            try:
                namespaces[name] = NamespaceSnapshot(name, confs, key, nid, found)
            except Exception:  # noqa: BLE001 - a bad namespace must not cost the others
                continue
        return cls(app_id, cluster, namespaces, version, float(created_at), source)

    # -- the split codec: an index and one part per namespace ---------------------------------
    def index_json(self, deltas: bool = True) -> bytes:
        """The index: everything but the configurations, which are named by their digest, and
        (unless not ``deltas``) the deltas of the namespaces this snapshot changed."""
        self.parts()  # the digests name the parts as they are written (see ``part``)
        entries: Dict[str, Dict[str, Any]] = {
            name: {"release_key": ns.release_key, "notification_id": ns.notification_id,
                   "found": ns.found, "digest": ns.digest}
            for name, ns in self.namespaces.items()
        }
        room = MAX_INDEX_DELTAS if deltas else 0
        for name, delta in self._deltas.items():
            room -= delta_size(delta)
            if room < 0:
                break
            entries[name]["delta"] = delta
        document = {
            "format": INDEX_FORMAT,
            "app_id": self.app_id,
            "cluster": self.cluster,
            "version": self.version,
            "created_at": self.created_at,
            "namespaces": entries,
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def parts(self) -> Dict[str, bytes]:
        """Each namespace's part by its digest (encoded once per namespace, then reused)."""
        parts = {}
        for ns in self.namespaces.values():
            part = ns.part()  # first: it may rename a decoded namespace (see ``part``)
            parts[ns.digest] = part
        return parts

    @classmethod
    def decode(cls, data: Union[bytes, str], read_part: Callable[[str, str], Optional[bytes]],
               source: Source = "cache", previous: Optional[Snapshot] = None) -> Snapshot:
        """Decode an index (reading only the parts of namespaces that differ from
        ``previous``) or a whole one-document snapshot. ``read_part(namespace, digest)`` returns
        the part's bytes or None. ProtocolError if it is neither; MissingPartError if a part is
        gone or replaced (read the index again)."""
        try:
            document = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"not a {INDEX_FORMAT} document ({exc})") from None
        if isinstance(document, dict) and document.get("format") == SNAPSHOT_FORMAT:
            return cls.from_dict(document, source=source, previous=previous)
        if not isinstance(document, dict) or document.get("format") != INDEX_FORMAT:
            raise ProtocolError(f"not a {INDEX_FORMAT} document")
        app_id, cluster, version, raw, created_at = _header(document)
        if (previous is not None and version == previous.version
                and app_id == previous.app_id and cluster == previous.cluster):
            # The one this process holds (a version names one publish): what a reader finds
            # when a second channel tells it of a release the first one brought (the cache
            # file's event after the uWSGI push), and costs it a header read, not a decode.
            return previous
        namespaces = {}
        for name, item in raw.items():
            if not isinstance(item, dict):
                raise ProtocolError(f"snapshot namespace {name!r} is not an object")
            key, nid = item.get("release_key"), item.get("notification_id", -1)
            found, digest = item.get("found", True), item.get("digest")
            if (not (key is None or isinstance(key, str)) or not isinstance(nid, int)
                    or not isinstance(found, bool) or not isinstance(digest, str)):
                raise ProtocolError(f"snapshot namespace {name!r} has the wrong shape")
            before = previous.namespaces.get(name) if previous is not None else None
            if (before is not None and before.found == found and before.release_key == key
                    and before.digest == digest):
                namespaces[name] = before.with_notification_id(nid)
                continue
            if before is not None and found and before.found:
                delta = item.get("delta")
                if isinstance(delta, dict) and delta.get("from") == before.digest:
                    confs = apply_delta(before.configurations, delta)
                    if confs is not None:  # else: a malformed delta, the part is read instead
                        try:
                            ns = NamespaceSnapshot(name, confs, key, nid, found)
                        except Exception:  # noqa: BLE001 - as below
                            continue
                        object.__setattr__(ns, "_digest", digest)  # the content the delta names
                        namespaces[name] = ns
                        continue
            part = read_part(name, digest)
            if part is None or part_digest(part) != digest:
                raise MissingPartError(f"the part of namespace {name!r} is gone or was replaced")
            try:
                confs = json.loads(part)
            except (ValueError, RecursionError) as exc:
                raise ProtocolError(f"the part of namespace {name!r} is not json ({exc})") from None
            if not isinstance(confs, dict) or not all(isinstance(v, str) for v in confs.values()):
                raise ProtocolError(f"the part of namespace {name!r} has the wrong shape")
            try:
                ns = NamespaceSnapshot(name, confs, key, nid, found)
            except Exception:  # noqa: BLE001 - a bad namespace must not cost the others
                continue
            object.__setattr__(ns, "_digest", digest)  # known: no need to encode it again
            namespaces[name] = ns
        return cls(app_id, cluster, namespaces, version, float(created_at), source)

    def __repr__(self) -> str:
        return (
            f"Snapshot({self.app_id!r}/{self.cluster!r}, v{self.version}, "
            f"namespaces={list(self.namespaces)})"
        )


def _header(data: Dict[str, Any]) -> Any:
    app_id, cluster, version = data.get("app_id"), data.get("cluster"), data.get("version")
    raw, created_at = data.get("namespaces"), data.get("created_at")
    if (
        not isinstance(app_id, str) or not isinstance(cluster, str)
        or not isinstance(version, int) or isinstance(version, bool) or not isinstance(raw, dict)
        or not isinstance(created_at, (int, float))
    ):
        raise ProtocolError("snapshot lacks app_id, cluster, version, created_at or namespaces")
    return app_id, cluster, version, raw, created_at


def diff(old: Optional[Snapshot], new: Snapshot) -> List[ChangeEvent]:
    """Change events from ``old`` to ``new``, one per namespace that changed.

    No events for a first load (``old`` is None): nothing changed from the app's point of view.
    """
    if old is None:
        return []
    events = []
    for name, ns in new.namespaces.items():
        before = old.namespaces.get(name)
        if before is ns:
            continue
        changes = diff_values(before._values if before is not None else {}, ns._values)
        if changes:
            events.append(ChangeEvent(name, MappingProxyType(changes), ns.release_key))
    for name, before in old.namespaces.items():
        if name not in new.namespaces:
            changes = diff_values(before._values, {})
            if changes:
                events.append(ChangeEvent(name, MappingProxyType(changes), None))
    return events


__all__ = ["Format", "NamespaceSnapshot", "Snapshot", "diff"]
