"""Resources: per-process objects built from config (``cfg.resource``), rebuilt when their keys
change instead of reloading the server.

A connection pool built before a fork is shared by every worker (they read each other's
answers), and one built from a URL keeps that URL until the process ends. A ``Resource`` fixes
both: the object is built in the process that uses it, at its first use there (a handle read in
a forked child builds the child's own; the parent's object is never closed there, nor even
finalized: it shares the parent's sockets, and a driver's ``__del__`` would talk on them), and a
release that changes one of its keys builds a new one off the request path, swaps it in with
one assignment and closes the old one after a grace period (never while a ``use()`` block holds
it). If the factory raises on the new values, the old object stays in service and the failure
shows in the log and in ``hotconf status``.

The fast path is two attribute reads: ``_fast`` is the object's box only while a healthy object
of this very process is in place. It is never set in a process that will fork (a uWSGI master,
a gunicorn arbiter with --preload: uWSGI forks in C, where no Python hook runs), and a fork
through Python (``os.fork``, multiprocessing, gunicorn) clears it in the child. Anything else
(first use, a fork, a failing rebuild due for a retry) falls through to ``_slow``, which
compares pids (a system call: about 0.2 us here, several times a dict lookup).
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import replace
from typing import (
    Any,
    Callable,
    Collection,
    Dict,
    Generic,
    Iterable,
    Iterator,
    List,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    TypeVar,
)

from .backoff import Backoff
from .changes import ChangeEvent
from .errors import ResourceError, UnknownNamespaceError
from .masking import mask_values_in
from .process import platform
from .reload.policy import Debounce, KeyRef, ReloadPolicy, describe
from .runtime import will_fork
from .snapshot import Snapshot
from .status import DependentState

log = logging.getLogger("hotconf")

T = TypeVar("T")

#: Defaults: changes settle for ``settle`` s (at most 10x that after the first), and the old
#: object is closed ``grace`` s after the swap.
SETTLE = 0.5
GRACE = 30.0

Values = Dict[KeyRef, str]  # (namespace, key) -> value, of the keys a resource follows

#: What a factory may raise and still leave the process as it was (the old object in
#: service): everything but a request to stop the process or the greenlet.
_STOPPING = (KeyboardInterrupt, SystemExit, GeneratorExit)


class Source(Protocol):
    """What a resource is built from (the Config): the factory is called with it."""

    def snapshot(self) -> Snapshot: ...


class _Built:
    """One object and what it was built from; ``users`` counts ``use()`` blocks holding it."""

    __slots__ = ("obj", "pid", "values", "users", "retired", "closed", "__weakref__")

    def __init__(self, obj: Any, values: Values):
        self.obj = obj
        self.pid = os.getpid()
        self.values = values
        self.users = 0
        self.retired = False  # replaced, and its grace period is over
        self.closed = False
        _boxes.add(self)


class _ProcessLocks:
    """Locks made in the process that uses them: a lock inherited across a fork may have been
    held by a parent's thread at that moment, and under gevent a lock made before the worker
    was patched lets every greenlet through. ``dict.setdefault`` makes creation race-free."""

    def __init__(self) -> None:
        self._by_pid: Dict[int, Tuple[threading.RLock, threading.Lock]] = {}

    def get(self, pid: int) -> Tuple[threading.RLock, threading.Lock]:
        locks = self._by_pid.get(pid)
        if locks is None:
            locks = self._by_pid.setdefault(pid, (threading.RLock(), threading.Lock()))
        return locks


def unique_name(wanted: str, taken: Collection[str]) -> str:
    """``wanted``, or ``wanted #2``... : two resources (or models) of one name would share one
    row in ``hotconf status``, and a failing one could hide behind a healthy one."""
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted} #{n}"
    return name


class Resource(Generic[T]):
    """A handle: ``handle()`` is the current object of this process; ``with handle.use() as
    obj:`` keeps one object for a block. Made by ``cfg.resource(factory, keys=[...])``."""

    def __init__(self, source: Source, factory: Callable[[Any], T], keys: Iterable[str], *,
                 report: Callable[[DependentState], None], namespaces: Collection[str],
                 taken: Collection[str] = (), close: Optional[Callable[[T], Any]] = None,
                 grace: float = GRACE, settle: float = SETTLE, name: Optional[str] = None):
        """``report`` records this process's state of the resource (``hotconf status``);
        ``namespaces`` are the Config's, ``taken`` the names of its other resources/models."""
        patterns = (keys,) if isinstance(keys, str) else tuple(keys)
        if not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise ValueError("cfg.resource needs keys=[...]: the keys (globs as in reload_on) "
                             "whose change rebuilds the object")
        for pattern in patterns:
            scope = pattern.partition(":")[0] if ":" in pattern else ""
            if scope and not _has_glob(scope) and scope not in namespaces:
                raise UnknownNamespaceError.of(scope, namespaces)
        if not callable(factory):
            raise TypeError(f"cfg.resource needs a factory callable, got {factory!r}")
        if inspect.iscoroutinefunction(factory):
            raise TypeError("cfg.resource got an async factory: resources are built off the "
                            "request path on a hotconf thread, where nothing awaits. Pass a "
                            "plain function that builds the client (most async clients build "
                            "synchronously and connect lazily)")
        if grace < 0 or settle < 0:
            raise ValueError("cfg.resource: grace and settle cannot be negative")
        named = getattr(factory, "__name__", "") or ""
        default = named if named and named != "<lambda>" else ", ".join(patterns)
        self.name = unique_name(name or default, taken)
        self.keys = patterns
        self.grace = grace
        self._source = source
        self._report_to = report
        self._factory = factory
        self._close = close
        self._policy = ReloadPolicy(patterns, wait_min=settle, wait_max=settle * 10,
                                    min_interval=0.0)
        self._fast: Optional[_Built] = None  # see the module's docstring
        self._built: Optional[_Built] = None
        self._locks = _ProcessLocks()
        self._state_pid = 0
        self._stopped = False
        self._reset(os.getpid())
        _handles.add(self)

    def _reset(self, pid: int) -> None:
        """This process's state (made again in a forked child: the parent's timers did not
        follow it, and what failed there is the parent's business)."""
        self._state_pid = pid
        self._debounce = Debounce(self._policy)
        self._timer: Optional[threading.Timer] = None
        self._retry = Backoff(1.0, 60.0)
        self._retry_at = 0.0
        self._retrying = False
        self._again = False  # a rebuild was asked for while one was under way
        self._failure: Optional[Tuple[Values, str]] = None  # (values tried, masked error)
        self._state = DependentState("resource", self.name, self.keys)

    def _guard(self) -> threading.RLock:
        """This process's state lock (held briefly, never across a build)."""
        pid = os.getpid()
        lock = self._locks.get(pid)[0]
        if self._state_pid != pid:
            with lock:
                if self._state_pid != pid:
                    self._reset(pid)
        return lock

    def _building(self) -> threading.Lock:
        """Held across a build: one at a time per process (a first access by many threads or
        greenlets at once builds once)."""
        self._guard()
        return self._locks.get(os.getpid())[1]

    # -- access -------------------------------------------------------------------------------------
    def __call__(self) -> T:
        fast = self._fast
        if fast is not None:
            return fast.obj
        return self._slow()

    get = __call__

    @contextmanager
    def use(self) -> Iterator[T]:
        """The current object, kept for the block: a rebuild meanwhile swaps in a new one for
        later accesses, and this one is not closed before the block ends."""
        self()
        with self._guard():
            built = self._built
            assert built is not None and built.pid == os.getpid()
            built.users += 1
        try:
            yield built.obj
        finally:
            with self._guard():
                built.users -= 1
            self._close_if_done(built)

    def _slow(self) -> T:
        pid = os.getpid()
        built = self._built
        if built is not None and built.pid == pid:
            # The object in service; its last rebuild failed: retry when due, off this path.
            if self._failure is not None and time.monotonic() >= self._retry_at:
                self._retry_in_background()
            return built.obj
        building = self._building()
        if self._failure is not None:
            # A first build failed: one access retries when the backoff is over; the others
            # fail fast meanwhile instead of queueing behind a slow connect.
            if time.monotonic() < self._retry_at or not building.acquire(blocking=False):
                raise self._first_build_error()
        else:
            building.acquire()
        try:
            built = self._built
            if built is None or built.pid != pid:
                # First use here, or the object came from the parent across a fork: build
                # this process's own (the parent's is left alone: kept, never closed).
                if built is not None:
                    _keep_forever(built)
                built = self._build(first=True)
                if built is None:
                    raise self._first_build_error()
                self._install(built)
                self._catch_up(built)
            return built.obj
        finally:
            building.release()

    def _first_build_error(self) -> ResourceError:
        error = self._failure[1] if self._failure is not None else "not built"
        return ResourceError(
            f"resource {self.name!r} could not be built from {', '.join(self.keys)}: {error}. "
            f"hotconf retries at an access after a backoff, and at the next release that "
            f"changes these keys")

    # -- building -----------------------------------------------------------------------------------
    def _values(self) -> Values:
        """The current values of the keys this resource follows."""
        return self._policy.select(self._source.snapshot().namespaces)

    def _build(self, first: bool) -> Optional[_Built]:
        """A new object from the current values, or None (the failure is recorded). Called
        with the build lock held."""
        values = self._values()  # taken before the factory reads them: a change meanwhile
        try:                     # leaves them different from the config, and rebuilds again
            with self._guard():
                self._state = replace(self._state, building_since=time.time())
            self._report()  # a factory that hangs shows in status, past the bound
            obj = self._factory(self._source)
            if inspect.isawaitable(obj):
                _discard(obj)
                raise TypeError("the factory returned an awaitable (an async factory?): pass "
                                "a plain function that builds the client")
        except _STOPPING:
            raise
        except BaseException as exc:  # noqa: BLE001 - gevent.Timeout too: the old one stays
            if type(exc).__name__ == "GreenletExit":
                raise
            self._failed(values, exc, first)
            return None
        return _Built(obj, values)

    def _install(self, built: _Built) -> None:
        with self._guard():
            old = self._built
            self._built = built
            self._fast = None if will_fork(platform.current()[1]) else built
            recovered = self._failure is not None
            self._failure = None
            self._retry.reset()
            self._state = DependentState("resource", self.name, self.keys,
                                         builds=self._state.builds + 1,
                                         failures=self._state.failures, built_at=time.time())
        if recovered:
            log.warning("hotconf: resource %r built again from %s", self.name,
                        ", ".join(self.keys))
        self._report()
        if old is not None and old.pid == built.pid:
            self._retire(old)

    def _catch_up(self, built: _Built) -> None:
        """A release that landed while the first build ran found nothing to rebuild: if the
        keys moved meanwhile, rebuild now (the values were read before the factory ran, so a
        difference is never missed, at worst rebuilt once for nothing)."""
        now = self._values()
        if now != built.values:
            changes = {ref: (built.values.get(ref), now.get(ref))
                       for ref in built.values.keys() | now.keys()
                       if built.values.get(ref) != now.get(ref)}
            with self._guard():
                self._debounce.add(time.monotonic(), changes)
                self._schedule()

    def _failed(self, values: Values, exc: BaseException, first: bool) -> None:
        message = self._masked(f"{type(exc).__name__}: {exc}", values)
        with self._guard():
            built = self._built
            here = built is not None and built.pid == os.getpid()
            old_values = built.values if built is not None and here else {}
            changed = sorted(ref for ref in values.keys() | old_values.keys()
                             if values.get(ref) != old_values.get(ref)) or sorted(values)
            repeat = self._failure is not None and self._failure[0] == values
            self._failure = (values, message)
            self._retry_at = time.monotonic() + self._retry.next_delay()
            if here:
                self._fast = None  # accesses go through _slow, which retries when due
            self._state = DependentState(
                "resource", self.name, self.keys, builds=self._state.builds,
                failures=self._state.failures + 1, built_at=self._state.built_at, error=message,
                failed_keys=tuple(f"{ns}:{key}" for ns, key in changed),
                failing_since=self._state.failing_since or time.time())
        if not repeat:  # once per process for the same values, not at every retry
            summary = describe({ref: (old_values.get(ref), values.get(ref)) for ref in changed})
            if not here:
                log.error("hotconf: resource %r could not be built (%s): %s", self.name,
                          summary or "no values", message)
            else:
                log.error("hotconf: resource %r could not be rebuilt after %s: %s; the old "
                          "object stays in service and the next release retries", self.name,
                          summary, message)
        self._report()

    def _masked(self, text: str, values: Values) -> str:
        """``text`` without any secret of the config: the factory may have read (and its
        driver quoted) keys it does not follow, a password next to the URL say."""
        pairs: List[Tuple[str, Optional[str]]] = [(key, v) for (_, key), v in values.items()]
        try:
            for namespace in self._source.snapshot().namespaces.values():
                pairs.extend(namespace.items())
        except Exception:  # noqa: BLE001 - masking with what we have is still masking
            pass
        return mask_values_in(text, pairs)

    def _report(self) -> None:
        try:
            self._report_to(self._state)
        except Exception:  # noqa: BLE001 - a status write must not fail a build
            log.debug("hotconf: recording resource %r's state failed", self.name, exc_info=True)

    # -- rebuilding ---------------------------------------------------------------------------------
    def feed(self, events: Sequence[ChangeEvent]) -> None:
        """A release arrived in this process (any thread): if it changes a key of this
        resource and an object is built here, rebuild once the changes have settled."""
        if self._stopped:
            return
        changes = self._policy.triggering(events)
        if not changes:
            return
        built = self._built
        if built is None or built.pid != os.getpid():
            # Nothing built here: the first access builds from the new values, now, even if
            # a first build failed a moment ago (its backoff is for the same values).
            if self._failure is not None:
                with self._guard():
                    self._retry_at = 0.0
            return
        with self._guard():
            self._debounce.add(time.monotonic(), changes)
            self._schedule()

    def _schedule(self) -> None:
        due = self._debounce.due_at()
        if due is None or self._stopped:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(max(0.0, due - time.monotonic()), self._settled)
        self._timer.daemon = True
        self._timer.name = f"hotconf-resource {self.name}"
        try:
            self._timer.start()
        except RuntimeError:  # interpreter shutdown
            log.debug("hotconf: resource %r: no thread for a rebuild", self.name)

    def _settled(self) -> None:
        with self._guard():
            due = self._debounce.due_at()
            if due is None or self._stopped:
                return
            if due > time.monotonic() + 0.001:  # more changes came: wait for them to settle
                self._schedule()
                return
            self._debounce.fire(time.monotonic())
        self.rebuild(wait=False)

    def rebuild(self, wait: bool = True) -> bool:
        """Build a new object now if the values it follows differ from the current object's
        (or its last rebuild failed); True if a new object is in place. Requests keep the
        object in service meanwhile. With ``wait=False`` a rebuild already under way is asked
        to run once more when it ends, instead of queueing a thread behind it (a factory that
        hangs holds one thread, not one per release)."""
        building = self._building()
        if not building.acquire(blocking=wait):
            self._again = True
            return False
        try:
            rebuilt = False
            while True:
                self._again = False
                rebuilt = self._rebuild_locked() or rebuilt
                if not self._again:
                    return rebuilt
        finally:
            building.release()

    def _rebuild_locked(self) -> bool:
        built = self._built
        if built is None or built.pid != os.getpid():
            return False
        if self._values() == built.values:
            if self._failure is not None:
                self._back_to_values_in_service()
            return False  # changed and changed back, or an unrelated release
        new = self._build(first=False)
        if new is None:
            return False
        self._install(new)
        return True

    def _retry_in_background(self) -> None:
        with self._guard():
            if self._retrying:
                return
            self._retrying = True

        def retry() -> None:
            try:
                self.rebuild(wait=False)
            finally:
                self._retrying = False

        try:
            threading.Thread(target=retry, name=f"hotconf-resource {self.name}",
                             daemon=True).start()
        except RuntimeError:
            self._retrying = False

    def _back_to_values_in_service(self) -> None:
        """The keys went back to the values the object in service was built from."""
        with self._guard():
            self._failure = None
            self._retry.reset()
            built = self._built
            if built is not None and not will_fork(platform.current()[1]):
                self._fast = built
            self._state = DependentState("resource", self.name, self.keys,
                                         builds=self._state.builds,
                                         failures=self._state.failures,
                                         built_at=self._state.built_at)
        log.warning("hotconf: resource %r: its keys are back to the values of the object in "
                    "service", self.name)
        self._report()

    # -- closing ------------------------------------------------------------------------------------
    def _retire(self, old: _Built) -> None:
        def over() -> None:
            old.retired = True
            self._close_if_done(old)

        if self.grace <= 0:
            over()
            return
        timer = threading.Timer(self.grace, over)
        timer.daemon = True
        timer.name = f"hotconf-resource-close {self.name}"
        try:
            timer.start()
        except RuntimeError:
            over()

    def _close_if_done(self, built: _Built) -> None:
        with self._guard():
            if not built.retired or built.users > 0 or built.closed or built.pid != os.getpid():
                return
            built.closed = True
        # On a thread of its own: the last use() block may end on a request's thread, and a
        # close may be slow (a pool draining its connections).
        try:
            threading.Thread(target=self._close_now, args=(built,), daemon=True,
                             name=f"hotconf-resource-close {self.name}").start()
        except RuntimeError:
            self._close_now(built)

    def _close_now(self, built: _Built) -> None:
        try:
            if self._close is not None:
                result = self._close(built.obj)
            else:
                closer = getattr(built.obj, "close", None) or getattr(built.obj, "dispose", None)
                if not callable(closer):
                    if callable(getattr(built.obj, "aclose", None)):
                        log.warning("hotconf: resource %r: the old object has only aclose(), "
                                    "which a hotconf thread cannot await; pass close= a plain "
                                    "function that closes it", self.name)
                    return
                result = closer()
            if inspect.isawaitable(result):
                _discard(result)
                log.warning("hotconf: resource %r: closing the old object returned an "
                            "awaitable, which a hotconf thread cannot await; pass close= a "
                            "plain function that closes it", self.name)
        except Exception as exc:  # noqa: BLE001 - a failed close must not hurt the new object
            log.warning("hotconf: closing the old object of resource %r failed: %s", self.name,
                        self._masked(f"{type(exc).__name__}: {exc}", built.values))

    def after_fork(self) -> None:
        """Nothing to do: the child notices the fork by its pid at its first access (uWSGI
        forks without Python's fork hooks)."""

    def resync(self) -> None:
        """Nothing to do at a process's first snapshot: an object built here was built from
        this process's values, and one from the parent is replaced at the first access."""

    def stop(self) -> None:
        """No more rebuilds (``Config.stop``); the object in service stays usable."""
        with self._guard():
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()

    @property
    def state(self) -> DependentState:
        """This process's view: builds, failures, the current error (masked)."""
        self._guard()
        return self._state

    def __repr__(self) -> str:
        return f"<hotconf resource {self.name!r} keys={list(self.keys)}>"


def _discard(awaitable: Any) -> None:
    """Close a coroutine nobody will await (no "never awaited" warning at its collection)."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


class Dependent(Protocol):
    name: str

    def feed(self, events: Sequence[ChangeEvent]) -> None: ...

    def resync(self) -> None: ...


def feed_all(dependents: Sequence[Dependent], events: Sequence[ChangeEvent],
             first: bool = False) -> None:
    """Each resource and bound model hears of a release (``first``: the first snapshot this
    process installs, which has no change events); one that fails hides it from none of the
    others, nor from the listeners (its error is logged, its secrets masked)."""
    if not events and not first:
        return
    for dependent in dependents:
        try:
            if first:
                dependent.resync()
            else:
                dependent.feed(events)
        except Exception as exc:  # noqa: BLE001
            log.error("hotconf: %r failed on a release (%s: %s); the others still have it",
                      dependent.name, type(exc).__name__, mask_values_in(
                          str(exc), [(k, c.new) for e in events for k, c in e.changes.items()]))


_handles: weakref.WeakSet[Resource[Any]] = weakref.WeakSet()
_boxes: weakref.WeakSet[_Built] = weakref.WeakSet()
_kept: List[Any] = []


def _keep_forever(built: _Built) -> None:
    """An object from the parent process: never closed here, and never finalized either (its
    ``__del__`` would close the parent's sockets: psycopg2 sends Terminate on them). A strong
    reference keeps it for the process's life; the extra reference count keeps it even through
    the interpreter's exit, when module globals are cleared."""
    if any(kept is built for kept in _kept):
        return
    _kept.append(built)
    try:
        import ctypes

        ctypes.pythonapi.Py_IncRef(ctypes.py_object(built))
    except Exception:  # noqa: BLE001 - not CPython: the list keeps it while the process runs
        pass


def _forget_in_child() -> None:
    """After ``os.fork``: no handle may answer from the parent's object without a pid check,
    and every object of the parent's is kept, never finalized here."""
    pid = os.getpid()
    for handle in list(_handles):
        handle._fast = None
    for box in list(_boxes):
        if box.pid != pid:
            _keep_forever(box)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _has_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")
