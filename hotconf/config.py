"""``Config``: what application code holds and reads. Building one is pure (no thread, no
request); a read is a dict lookup in the snapshot the process holds. Where and when hotconf
starts in a process is ``hotconf.process``'s business: this class reads, converts, tells."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, List, Optional, Sequence, TypeVar, Union, cast

from . import aio, typed
from .changes import ChangeEvent
from .errors import UnknownNamespaceError
from .listeners import Listener, Listeners
from .options import Options, resolve_options
from .process.binding import Binding
from .process.role import RoleName
from .reload.policy import ReloadRequest
from .resources import GRACE, SETTLE, Resource, feed_all
from .snapshot import NamespaceSnapshot, Snapshot, SourceName, diff
from .status import Status

if TYPE_CHECKING:
    from .bound import Binder

DEFAULT_NAMESPACE = typed.DEFAULT_NAMESPACE
T = TypeVar("T")
M = TypeVar("M")


class Config(typed.TypedReads):
    """An Apollo app's configuration, kept current: ``Config(app_id="demo", server=URL)``."""

    def __init__(
        self, app_id: Optional[str] = None, server: Union[str, Sequence[str], None] = None, *,
        config_service: Union[str, Sequence[str], None] = None, cluster: Optional[str] = None,
        namespaces: Union[str, Sequence[str], None] = None, secret: Optional[str] = None,
        label: Optional[str] = None, ip: Optional[str] = None, data_center: Optional[str] = None,
        cache_dir: Union[str, os.PathLike[str], None] = None, store: Optional[str] = None,
        poller: Optional[str] = None, reload_on: Sequence[str] = (),
        on_reload: Optional[Callable[[ReloadRequest], None]] = None, reload: str = "auto",
        reload_wait: tuple[float, float] = (2.0, 10.0), reload_splay: float = 0.0,
        reload_min_interval: float = 30.0, options: Optional[Options] = None, **tuning: float,
    ):
        """Explicit arguments win over Apollo's environment variables (see the README), or
        pass ``options`` from ``hotconf.options.resolve_options`` and nothing else."""
        self.options = options or resolve_options(
            app_id=app_id, server=server, config_service=config_service, cluster=cluster,
            namespaces=namespaces, secret=secret, label=label, ip=ip, data_center=data_center,
            cache_dir=cache_dir, store=store, poller=poller, reload_on=reload_on,
            on_reload=on_reload, reload=reload, reload_wait=reload_wait, reload_splay=reload_splay,
            reload_min_interval=reload_min_interval, **cast(dict[str, Any], tuning))
        self.settings = self.options.settings
        self._snapshot: Optional[Snapshot] = None  # set only where hotconf is armed
        self._getters: Optional[dict[str, Callable[[str, Any], Any]]] = None  # the hot path
        self._lock = threading.RLock()
        self._listeners = Listeners()
        self._dependents: List[Union[Resource[Any], Binder]] = []
        self._binding = Binding(self.options, self)

    # -- what the process role calls (``Binding``) --------------------------------------------------
    def _install(self, snapshot: Snapshot) -> List[ChangeEvent]:
        with self._lock:
            old = self._snapshot
            if not snapshot.newer_than(old):
                return []
            self._snapshot = snapshot
            self._getters = {name: ns.getter() for name, ns in snapshot.namespaces.items()}
        events = diff(old, snapshot)
        feed_all(self._dependents, events, first=old is None)  # then the listeners
        self._listeners.dispatch(events, first=old is None)
        return events

    def _forget(self) -> None:
        """In a forked child: drop what the parent held, so the first read arms this process."""
        self._snapshot = None
        self._getters = None
        self._lock = threading.RLock()
        self._listeners.after_fork()
        for dependent in self._dependents:
            dependent.after_fork()

    def start(self) -> Config:
        """Load now instead of at the first read (raises if nothing is available)."""
        self._binding.load()
        return self

    async def ready(self, timeout: float = 10.0) -> Config:
        """``await cfg.ready()`` in an async app's startup: loads on a thread (waiting up to
        ``timeout``) while the loop keeps running, and binds the loop for async listeners."""
        return await aio.ready(self, self._listeners.loop, timeout)

    def stop(self) -> None:
        """Stop polling and listener delivery. Reads keep answering from the last snapshot."""
        self._binding.stop()
        self._listeners.close()
        for dependent in self._dependents:
            dependent.stop()

    close = stop

    def __enter__(self) -> Config:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def check(self) -> None:
        """Swap in the store's newer snapshot, if any (a version read; run at each request)."""
        self._binding.check()

    @property
    def role(self) -> RoleName:
        """``"poller"`` or ``"reader"`` once armed in this process; ``"idle"`` before."""
        return self._binding.role

    def status(self) -> Status:
        """This process's row of ``hotconf status`` (and the poller's health if it polls)."""
        return self._binding.status()

    @property
    def cache_path(self) -> Path:
        return self._binding.cache.path

    @property
    def source(self) -> SourceName:
        """``"remote"``, ``"cache"``, ``"store"`` (see ``snapshot.Source``); ``"none"`` unloaded."""
        snapshot = self._snapshot
        return snapshot.source if snapshot is not None else "none"

    # -- reading -------------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None, namespace: str = DEFAULT_NAMESPACE) -> Any:
        """The value of ``key`` as a string, or ``default`` if the namespace has no such key."""
        # The hot path: one dict lookup for the namespace's bound dict.get. Before the first
        # load (and in a master that will fork) _getters is None: the slow path arms.
        try:
            return self._getters[namespace](key, default)  # type: ignore[index]
        except (KeyError, TypeError):
            return self.namespace(namespace).get(key, default)

    def namespace(self, name: str = DEFAULT_NAMESPACE) -> NamespaceSnapshot:
        """The namespace now: a read-only mapping with ``.content``, ``.parsed``,
        ``.release_key`` (a point-in-time view: call again to see a newer release)."""
        try:
            return self.snapshot().namespaces[name]
        except KeyError:
            raise UnknownNamespaceError.of(name, self.settings.namespaces) from None

    def snapshot(self) -> Snapshot:
        """Everything this process holds now, consistent across namespaces."""
        return self._snapshot or self._binding.load()

    def keys(self, namespace: str = DEFAULT_NAMESPACE) -> List[str]:
        return list(self.namespace(namespace))

    def on_change(self, callback: Optional[Listener] = None, *, keys: Optional[Collection[str]] = None,
                  prefixes: Optional[Collection[str]] = None, namespace: Optional[str] = None) -> Any:
        """Call ``callback(event)`` after each release that changes a key of interest: ``keys``
        and ``prefixes`` narrow the keys, ``namespace`` the namespace (none: every change).
        A decorator too. Listeners run on a hotconf thread (``async def`` ones on ``ready()``'s loop)."""
        return self._listeners.register(callback, keys, prefixes, namespace,
                                        self.settings.namespaces)

    def remove_listener(self, callback: Listener) -> bool:
        return self._listeners.remove(callback)

    # -- built from config -------------------------------------------------------------------------
    def resource(self, factory: Callable[[Config], T], keys: Union[str, Sequence[str]], *,
                 close: Optional[Callable[[T], Any]] = None, grace: float = GRACE,
                 settle: float = SETTLE, name: Optional[str] = None) -> Resource[T]:
        """A per-process object built by ``factory(cfg)`` at its first use in each process and
        rebuilt when a release changes one of ``keys`` (globs as in ``reload_on``). ``handle()``
        is the current object; ``with handle.use() as obj:`` keeps one for a block."""
        handle = Resource(self, factory, keys, report=self._binding.note_dependent, close=close,
                          namespaces=self.settings.namespaces, grace=grace, settle=settle,
                          name=name, taken={d.name for d in self._dependents})
        self._dependents.append(handle)
        return handle

    def bind(self, model: type[M], namespace: str = DEFAULT_NAMESPACE,
             prefix: Optional[str] = None) -> M:
        """A live instance of ``model`` (a dataclass, or a pydantic model) from the keys under
        ``prefix``: a release that does not validate is not applied to it (raises
        ``InvalidValuesError`` here if the current values do not)."""
        from .bound import Binder  # the model machinery, loaded by the first bind

        binder = Binder(model, namespace, prefix, lookup=lambda ns: self.namespace(ns).get,
                        report=self._binding.note_dependent, mailbox=self._listeners.mailbox,
                        reload_also_on=self._binding.reload_also_on,
                        taken={d.name for d in self._dependents})
        self._dependents.append(binder)
        return binder.live  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        s = self.settings
        return (f"Config(app_id={s.app_id!r}, cluster={s.cluster!r}, "
                f"namespaces={list(s.namespaces)}, source={self.source!r})")
