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
import weakref
from typing import Any, Callable, Collection, List, Optional, Sequence, Tuple, TypeVar, Union

from .changes import ChangeEvent
from .engine import Engine
from .errors import ConfigUnavailableError, ConfigValueError, SettingsError, UnknownNamespaceError
from .listeners import Listener, Listeners
from .poller import Poller
from .reload import ReloadPolicy
from .reload_controller import ReloadController
from .reloaders import ReloadRequest
from .reloaders import choose as choose_reloader
from .runtime import POLLER_CHOICES, ProcessFacts, detect, will_fork
from .settings import Settings
from .snapshot import NamespaceSnapshot, Snapshot, diff
from .stores.memory import MemoryStore

log = logging.getLogger("hotconf")

T = TypeVar("T")
_NO_DEFAULT: Any = object()
_TRUE = frozenset({"true", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "off", "0"})
DEFAULT_NAMESPACE = "application"
STORES = ("auto", "uwsgi", "file", "memory")
RELOADS = ("auto", "uwsgi", "gunicorn", "callback", "none")

_live: weakref.WeakSet[Config] = weakref.WeakSet()


def live_configs() -> List[Config]:
    """Every Config of this process that has not been stopped."""
    return [cfg for cfg in list(_live) if not cfg._stopped]


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
        store: Optional[str] = None,
        poller: Optional[str] = None,
        reload_on: Sequence[str] = (),
        on_reload: Optional[Callable[[ReloadRequest], None]] = None,
        reload: str = "auto",
        reload_wait: Tuple[float, float] = (2.0, 10.0),
        reload_splay: float = 0.0,
        reload_min_interval: float = 30.0,
        **tuning: float,
    ):
        self.settings = Settings.resolve(
            app_id=app_id, server=server, config_service=config_service, cluster=cluster,
            namespaces=namespaces, secret=secret, label=label, ip=ip, data_center=data_center,
            cache_dir=cache_dir, **tuning,
        )
        self.store_kind = store or os.environ.get("HOTCONF_STORE") or "auto"
        self.poller_mode = poller or os.environ.get("HOTCONF_POLLER") or "auto"
        if self.store_kind not in STORES:
            raise SettingsError(f"store={self.store_kind!r}: use one of {', '.join(STORES)}")
        if self.poller_mode not in POLLER_CHOICES:
            raise SettingsError(
                f"poller={self.poller_mode!r}: use one of {', '.join(POLLER_CHOICES)}")
        self._snapshot: Optional[Snapshot] = None  # set only where hotconf is armed (see _load)
        self._getters: Optional[dict] = None  # namespace -> bound dict.get of _snapshot's values
        self._prefork: Optional[Snapshot] = None
        self._lock = threading.RLock()
        self._listeners = Listeners()
        self._engine: Optional[Engine] = None
        self._stopped = False
        try:
            self.reload_policy = ReloadPolicy(tuple(reload_on), reload_wait[0], reload_wait[1],
                                              reload_splay, reload_min_interval)
        except (ValueError, IndexError, TypeError) as exc:
            raise SettingsError(f"reload settings: {exc}") from None
        if reload not in RELOADS:
            raise SettingsError(f"reload={reload!r}: use one of {', '.join(RELOADS)}")
        if reload == "callback" and on_reload is None:
            raise SettingsError("reload='callback' needs on_reload=<callable>")
        self._reload_kind, self._on_reload = reload, on_reload
        self._reloads: Optional[ReloadController] = None
        _live.add(self)
        _arm_uwsgi_master()

    # -- lifecycle ---------------------------------------------------------------------------------
    def _load(self) -> Snapshot:
        """The slow path of a read: the first one in a process, or any read in a master that
        will fork. Arms hotconf in this process (store, election, poller or reader)."""
        with self._lock:
            if self._snapshot is not None:
                return self._snapshot
            if self._stopped:
                if self._prefork is not None:
                    return self._prefork
                raise ConfigUnavailableError("this Config was stopped; create a new one")
            facts = detect()
            if will_fork(facts):
                return self._load_before_fork()
            engine = self._arm(facts=facts)
        if self._snapshot is None and engine.role == "reader":
            # Another process polls but has published nothing yet: give it its first load.
            # (Not under self._lock: the delivery we wait for takes it.)
            s = self.settings
            engine.wait_ready(s.connect_timeout + s.fetch_timeout + 1.0)
        snapshot = self._snapshot or self._prefork
        if snapshot is None:
            raise self._unavailable()
        return snapshot

    def _load_before_fork(self) -> Snapshot:
        """In a master that forks later: load once, synchronously, and start nothing. The
        snapshot is not installed on the fast path, so each child's first read arms itself."""
        if self._prefork is None:
            poller = Poller(self.settings, MemoryStore())
            try:
                self._prefork = poller.load_initial()
                self._last_error = poller.last_error
            finally:
                poller.client.close()
        if self._prefork is None:
            raise self._unavailable()
        return self._prefork

    def _arm(self, facts: Optional[ProcessFacts] = None, as_mule: bool = False) -> Engine:
        """Start this process's part: called on the first read, or eagerly after a fork
        (gunicorn post_fork) or in a mule (run_mule)."""
        with self._lock:
            engine = self._engine
            if engine is not None and engine.pid == os.getpid():
                return engine
            facts = facts or detect()
            poller_mode = "auto" if as_mule else self.poller_mode
            engine = Engine(self.settings, facts, self.store_kind, poller_mode, self._swap,
                            held=lambda: self._snapshot)
            self._engine = engine
            if self.reload_policy.patterns:
                self._reloads = ReloadController(
                    self.reload_policy, choose_reloader(self._reload_kind, facts, self._on_reload),
                    is_poller=lambda: engine.role == "poller")
            engine.start()
            if engine.poller is not None and engine.poller.last_error is not None:
                self._last_error = engine.poller.last_error
            return engine

    def _after_fork_in_child(self) -> None:
        """The engine's threads did not survive the fork: forget them; the next read re-arms."""
        self._engine = None
        self._snapshot = None
        self._getters = None
        self._reloads = None
        self._lock = threading.RLock()
        self._listeners.after_fork()

    def check(self) -> None:
        """Swap in a newer snapshot now if the store has one (cheap: a version read). The Flask
        integration calls this at the start of each request."""
        engine = self._engine
        if engine is not None and engine.pid == os.getpid():
            engine.check()

    @property
    def role(self) -> str:
        """"poller" or "reader" once armed in this process; "idle" before."""
        engine = self._engine
        return engine.role if engine is not None and engine.pid == os.getpid() else "idle"

    @property
    def cache_path(self):
        from .cache import LocalCache

        return LocalCache.for_settings(self.settings).path

    _last_error: Optional[Exception] = None

    def _unavailable(self) -> ConfigUnavailableError:
        reason = str(self._last_error) if self._last_error else "no answer yet"
        cache = self.cache_path
        cached = (f"the local cache {cache} could not be used (see the log)" if cache.exists()
                  else f"there is no local cache at {cache}")
        return ConfigUnavailableError(
            f"no configuration for app {self.settings.app_id!r} cluster "
            f"{self.settings.cluster!r}: nothing loaded from the "
            f"{self.settings.servers_description} ({reason}) and {cached}. hotconf keeps "
            f"retrying in the background; a cache is written after the first successful load"
        )

    def _swap(self, snapshot: Snapshot) -> None:
        """Called by the store when a newer snapshot is published."""
        with self._lock:
            old = self._snapshot
            if old is not None and snapshot.version <= old.version:
                return
            self._snapshot = snapshot
            self._getters = {name: ns.getter() for name, ns in snapshot.namespaces.items()}
        events = diff(old, snapshot)
        self._listeners.dispatch(events)
        reloads = self._reloads
        if reloads is not None and events:
            reloads.feed(events)

    def start(self) -> Config:
        """Load now instead of at the first read (raises if nothing is available)."""
        self._load()
        return self

    def stop(self) -> None:
        """Stop polling and listener delivery. Reads keep answering from the last snapshot."""
        with self._lock:
            self._stopped = True
            engine, self._engine = self._engine, None
        if engine is not None and engine.pid == os.getpid():
            engine.stop()
        if self._reloads is not None:
            self._reloads.close()
        self._listeners.close()

    close = stop

    def __enter__(self) -> Config:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- reading ---------------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None, namespace: str = DEFAULT_NAMESPACE) -> Any:
        """The value of ``key`` as a string, or ``default`` if the namespace has no such key."""
        # The hot path: one dict lookup for the namespace's bound dict.get. Before the first
        # load (and in a master that will fork) _getters is None: the slow path arms.
        try:
            return self._getters[namespace](key, default)  # type: ignore[index]
        except (KeyError, TypeError):
            return self._get_slow(key, default, namespace)

    def _get_slow(self, key: str, default: Any, namespace: str) -> Any:
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


def _arm_uwsgi_master() -> None:
    """In a uWSGI master (before the fork), register the signal the poller uses to tell every
    worker about a new snapshot, and a post-fork hook that arms each worker and mule right away.
    Registering is not starting: no thread, no request."""
    import sys

    if "uwsgi" in sys.modules:
        try:
            from .integrations import uwsgi as uwsgi_integration

            if uwsgi_integration.arm_master() is not None:
                uwsgi_integration.arm_post_fork(_arm_all)
        except Exception:  # noqa: BLE001 - never break the app's import
            log.exception("hotconf: could not register the uWSGI signal")


def _arm_all() -> None:
    for cfg in live_configs():
        try:
            cfg._arm()
        except Exception:  # noqa: BLE001 - a worker must boot even if Apollo is down
            log.exception("hotconf: arming %r after fork failed; it retries on first read", cfg)


def _after_fork_in_child() -> None:
    for cfg in list(_live):
        cfg._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
