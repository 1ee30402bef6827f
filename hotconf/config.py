"""``Config``: what application code holds and reads.

Building one is pure: no thread, no request, nothing at import. The first read loads (from the
config service, else the local cache) and starts the poller in this process. A read is a dict
lookup in the immutable snapshot the process currently holds; new snapshots are swapped in by
the store's push, off the read path.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any, Callable, Collection, List, Optional, Sequence, TypeVar, Union

from .changes import ChangeEvent
from .errors import ConfigUnavailableError, ConfigValueError, UnknownNamespaceError
from .listeners import Listener, Listeners
from .poller import Poller
from .settings import Settings
from .snapshot import NamespaceSnapshot, Snapshot, diff
from .stores.memory import MemoryStore

log = logging.getLogger("hotconf")

T = TypeVar("T")
_NO_DEFAULT: Any = object()
_TRUE = frozenset({"true", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "off", "0"})
DEFAULT_NAMESPACE = "application"


class Config:
    """An Apollo app's configuration, kept current.

    >>> cfg = Config(app_id="demo", server="http://127.0.0.1:8080")   # doctest: +SKIP
    >>> cfg.get("timeout", default="30")                               # doctest: +SKIP
    """

    def __init__(
        self,
        app_id: Optional[str] = None,
        server: Union[str, Sequence[str], None] = None,
        *,
        config_service: Union[str, Sequence[str], None] = None,
        cluster: Optional[str] = None,
        namespaces: Union[str, Sequence[str], None] = None,
        secret: Optional[str] = None,
        label: Optional[str] = None,
        ip: Optional[str] = None,
        data_center: Optional[str] = None,
        cache_dir: Union[str, os.PathLike[str], None] = None,
        **tuning: float,
    ):
        self.settings = Settings.resolve(
            app_id=app_id, server=server, config_service=config_service, cluster=cluster,
            namespaces=namespaces, secret=secret, label=label, ip=ip, data_center=data_center,
            cache_dir=cache_dir, **tuning,
        )
        self._snapshot: Optional[Snapshot] = None
        self._lock = threading.RLock()
        self._listeners = Listeners()
        self._poller: Optional[Poller] = None
        self._store: Optional[MemoryStore] = None
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def _load(self) -> Snapshot:
        """First read (or a read while nothing is available): load synchronously, start polling."""
        with self._lock:
            if self._snapshot is not None:
                return self._snapshot
            if self._stopped:
                raise ConfigUnavailableError("this Config was stopped; create a new one")
            if self._poller is None:
                self._store = MemoryStore()
                self._store.subscribe(self._swap)
                self._poller = Poller(self.settings, self._store)
                self._poller.load_initial()
                self._poller.start()
            if self._snapshot is None:
                raise self._unavailable()
            return self._snapshot

    def _unavailable(self) -> ConfigUnavailableError:
        poller = self._poller
        reason = str(poller.last_error) if poller and poller.last_error else "no answer yet"
        cache = poller.cache.path if poller else self.settings.cache_dir
        return ConfigUnavailableError(
            f"no configuration for app {self.settings.app_id!r} cluster "
            f"{self.settings.cluster!r}: nothing loaded from the "
            f"{self.settings.servers_description} ({reason}) and there is no local cache at "
            f"{cache}. hotconf keeps retrying in the background; a cache is written after the "
            f"first successful load"
        )

    def _swap(self, snapshot: Snapshot) -> None:
        """Called by the store when a newer snapshot is published."""
        with self._lock:
            old = self._snapshot
            if old is not None and snapshot.version <= old.version:
                return
            self._snapshot = snapshot
        self._listeners.dispatch(diff(old, snapshot))

    def start(self) -> Config:
        """Load now instead of at the first read (raises if nothing is available)."""
        self._load()
        return self

    def stop(self) -> None:
        """Stop polling and listener delivery. Reads keep answering from the last snapshot."""
        with self._lock:
            self._stopped = True
            poller, self._poller = self._poller, None
        if poller is not None:
            poller.stop()
        self._listeners.close()

    close = stop

    def __enter__(self) -> Config:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- reading ---------------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None, namespace: str = DEFAULT_NAMESPACE) -> Any:
        """The value of ``key`` as a string, or ``default`` if the namespace has no such key."""
        snapshot = self._snapshot or self._load()
        try:
            ns = snapshot.namespaces[namespace]
        except KeyError:
            raise self._unknown(namespace) from None
        return ns.get(key, default)

    def _unknown(self, namespace: str) -> UnknownNamespaceError:
        return UnknownNamespaceError(
            f"namespace {namespace!r} is not loaded by this Config (namespaces="
            f"{list(self.settings.namespaces)}); add it to namespaces= or pass namespace="
        )

    def namespace(self, name: str = DEFAULT_NAMESPACE) -> NamespaceSnapshot:
        """The namespace as it is now: a read-only mapping with ``.content``, ``.parsed``,
        ``.release_key`` (a point-in-time view: call again to see a newer release)."""
        snapshot = self._snapshot or self._load()
        try:
            return snapshot.namespaces[name]
        except KeyError:
            raise self._unknown(name) from None

    def snapshot(self) -> Snapshot:
        """Everything this process holds now, consistent across namespaces."""
        return self._snapshot or self._load()

    def keys(self, namespace: str = DEFAULT_NAMESPACE) -> List[str]:
        return list(self.namespace(namespace))

    def _typed(self, key: str, default: Any, namespace: str, wanted: str,
               convert: Callable[[str], T]) -> Any:
        raw = self.get(key, None, namespace)
        if raw is None:
            return None if default is _NO_DEFAULT else default
        try:
            return convert(raw)
        except (ValueError, TypeError) as exc:
            error = ConfigValueError(key, namespace, raw, wanted, str(exc) if wanted == "JSON"
                                     else "")
            if default is _NO_DEFAULT:
                raise error from None
            log.warning("hotconf: %s; using the default %r", error, default)
            return default

    def get_int(self, key: str, default: Any = _NO_DEFAULT,
                namespace: str = DEFAULT_NAMESPACE) -> Optional[int]:
        return self._typed(key, default, namespace, "integer", lambda s: int(s.strip()))

    def get_float(self, key: str, default: Any = _NO_DEFAULT,
                  namespace: str = DEFAULT_NAMESPACE) -> Optional[float]:
        return self._typed(key, default, namespace, "number", lambda s: float(s.strip()))

    def get_bool(self, key: str, default: Any = _NO_DEFAULT,
                 namespace: str = DEFAULT_NAMESPACE) -> Optional[bool]:
        return self._typed(key, default, namespace, "boolean (true/false, yes/no, on/off, 1/0)",
                           _to_bool)

    def get_list(self, key: str, default: Any = _NO_DEFAULT, namespace: str = DEFAULT_NAMESPACE,
                 separator: str = ",") -> Optional[List[str]]:
        return self._typed(key, default, namespace, "list",
                           lambda s: [p.strip() for p in s.split(separator) if p.strip()])

    def get_json(self, key: str, default: Any = _NO_DEFAULT,
                 namespace: str = DEFAULT_NAMESPACE) -> Any:
        """A JSON value; in a json/yaml namespace also a whole subtree by dotted path."""
        ns = self.namespace(namespace)
        if key not in ns and ns.format.is_structured:
            try:
                return ns.lookup(key)
            except KeyError:
                return None if default is _NO_DEFAULT else default
        return self._typed(key, default, namespace, "JSON", json.loads)

    # -- listening ---------------------------------------------------------------------------------
    def on_change(
        self,
        callback: Optional[Listener] = None,
        *,
        keys: Optional[Collection[str]] = None,
        prefixes: Optional[Collection[str]] = None,
        namespace: Optional[str] = None,
    ) -> Any:
        """Call ``callback(event)`` after each release that changes a key of interest.

        ``keys`` and ``prefixes`` narrow the keys (``event.changes`` holds only those),
        ``namespace`` the namespace; none of them means every change. Usable as a decorator.
        Listeners run on a hotconf thread, one after another; one that raises is logged.
        """
        if namespace is not None and namespace not in self.settings.namespaces:
            raise self._unknown(namespace)

        def register(fn: Listener) -> Listener:
            self._listeners.add(fn, keys, prefixes, namespace)
            return fn

        return register if callback is None else register(callback)

    def remove_listener(self, callback: Callable[[ChangeEvent], None]) -> bool:
        return self._listeners.remove(callback)

    # -- introspection -----------------------------------------------------------------------------
    @property
    def source(self) -> str:
        """Where the current snapshot came from: "remote", "cache", or "none" (not loaded)."""
        snapshot = self._snapshot
        return snapshot.source if snapshot is not None else "none"

    def __repr__(self) -> str:
        s = self.settings
        return (f"Config(app_id={s.app_id!r}, cluster={s.cluster!r}, "
                f"namespaces={list(s.namespaces)}, source={self.source!r})")


def _to_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(text)
