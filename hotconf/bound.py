"""Bound models (``cfg.bind``): a typed model kept current, validated before it is applied.

The object ``cfg.bind`` returns is an instance of the user's model class (a subclass made for
the binding, so ``isinstance`` holds and ``on_change`` is there). A release replaces its
``__dict__`` with a freshly validated instance's in one assignment: a field read is a plain
attribute read (no proxy, no per-read validation) and a reader never sees half a release. A
release whose values do not validate is not applied to the model at all: it keeps its last
valid values, the problem is logged once with its keys named (values masked) and shows in
``hotconf status``; the next valid release applies.

``restart=True`` fields keep the value they had at bind time: they are what the framework or a
pool built at startup reads, so a change applies only through a reload (they join
``reload_on``, unless the Config has ``reload="none"``).
"""

from __future__ import annotations

import logging
import threading
import time
from glob import escape
from typing import Any, Callable, Collection, Dict, FrozenSet, List, Optional, Sequence, Tuple, Type, TypeVar

from .changes import ChangeEvent
from .errors import InvalidValuesError, ValueProblem
from .listeners import AnyMailbox, Mailbox
from .masking import mask_values_in
from .models import ModelSchema
from .process import platform
from .resources import unique_name
from .runtime import reload_keeps_import, will_fork
from .status import DependentState

log = logging.getLogger("hotconf")

M = TypeVar("M")
ModelListener = Callable[[Any, Any], None]


class Binder:
    """Keeps one live model instance current in this process."""

    def __init__(self, model: Type[Any], namespace: str, prefix: Optional[str], *,
                 lookup: Callable[[str], Callable[[str], Optional[str]]],
                 report: Callable[[DependentState], None],
                 reload_also_on: Callable[[Tuple[str, ...]], bool], taken: Collection[str] = (),
                 mailbox: Callable[[Callable[..., Any], str], AnyMailbox] = Mailbox):
        """``lookup(namespace)`` reads the namespace as this process holds it now; ``report``
        records the model's state (``hotconf status``); ``reload_also_on`` adds restart fields'
        keys to ``reload_on`` (False: the Config reloads nothing); ``taken`` are the names of
        the Config's other resources and models; ``mailbox`` makes a listener's mailbox (the
        Config's: an ``async def`` listener runs on its bound event loop)."""
        self.schema = ModelSchema.of(model, prefix, namespace)
        self.namespace = namespace
        where = self.schema.prefix.rstrip(".")
        if namespace != "application":
            where = f"{namespace}:{where}" if where else namespace
        self.name = unique_name(f"{self.schema.name}({where})" if where else self.schema.name,
                                taken)
        self._namespace_lookup = lookup
        self._report_to = report
        self._keys: FrozenSet[str] = frozenset(self.schema.keys)
        self._restart_keys: FrozenSet[str] = frozenset(self.schema.restart_keys)
        self._lock = threading.Lock()
        self._listeners: List[ModelListener] = []
        self._mailboxes: Dict[int, AnyMailbox] = {}
        self._mailbox = mailbox
        self._failed_with: Optional[str] = None
        self.current = self.schema.build(self._lookup())  # raises InvalidValuesError
        self.startup = self.current
        self._state = DependentState("model", self.name, self._patterns(), builds=1,
                                     built_at=time.time())
        self.live = _live_instance(model, self.current, self)
        facts = platform.current()[1]
        if self._restart_keys:
            if reload_keeps_import(facts):
                # With --preload the arbiter keeps its import across a HUP, and a Celery pool
                # restart re-forks the children from the main process: the workers forked
                # again inherit this very startup value, so a reload would change nothing.
                self._restart_note = ("only a restart applies it (a reload re-forks the "
                                      "workers from this process's import)")
            elif reload_also_on(tuple(f"{escape(namespace)}:{escape(key)}"
                                      for key in self.schema.restart_keys)):
                self._restart_note = "a reload applies it (restart fields join reload_on)"
            else:
                self._restart_note = "it applies at the next restart (reload='none')"
        if will_fork(facts):
            log.info("hotconf: %s is bound in a process that forks its workers: each worker's "
                     "copy follows releases once hotconf is armed there (at its first read or "
                     "request check, or right after the fork with the server's post-fork hook: "
                     "see the README)", self.name)
        self._report()

    def _patterns(self) -> tuple:
        return tuple(f"{self.namespace}:{key}" for key in self.schema.keys)

    def _lookup(self) -> Callable[[str], Optional[str]]:
        return self._namespace_lookup(self.namespace)

    def _present(self) -> List[Tuple[str, Optional[str]]]:
        lookup = self._lookup()
        return [(key, lookup(key)) for key in self.schema.keys]

    def feed(self, events: Sequence[ChangeEvent]) -> None:
        """Called in release order as each snapshot is installed in this process."""
        self._apply([key for event in events if event.namespace == self.namespace
                     for key in event.changes if key in self._keys])

    def resync(self) -> None:
        """The first snapshot this process installs (no change events: in a forked child, the
        model still holds what the parent bound, maybe releases ago)."""
        self._apply(list(self.schema.keys))

    def _apply(self, changed: List[str]) -> None:
        if not changed:
            return
        with self._lock:
            try:
                new = self.schema.build(self._lookup(), pinned=self.startup)
            except InvalidValuesError as error:
                self._rejected(error)
                return
            except Exception as exc:  # noqa: BLE001 - any refusal keeps the last valid values
                self._rejected(InvalidValuesError(self.schema.name, [ValueProblem(
                    ", ".join(changed), self.namespace, None,
                    mask_values_in(f"{type(exc).__name__}: {exc}", self._present()))]))
                return
            held = sorted(k for k in changed if k in self._restart_keys)
            if held:
                log.warning("hotconf: %s: %s changed; %s keeps its startup value (restart=True): "
                            "%s", self.name, ", ".join(held), "it" if len(held) == 1
                            else "they", self._restart_note)
            recovered = self._failed_with is not None
            self._failed_with = None
            if self.schema.values(new) == self.schema.values(self.current):
                if recovered:
                    self._accepted()
                return
            old, self.current = self.current, new
            _swap(self.live, new)
            self._accepted()
            calls = [(listener, old, new) for listener in self._listeners]
        for listener, before, after in calls:
            self._post(listener, before, after)

    def _rejected(self, error: InvalidValuesError) -> None:
        message = str(error)
        if message != self._failed_with:  # once per process for the same problems
            log.error("hotconf: a release was not applied to %s: %s", self.name, message)
        self._failed_with = message
        now = time.time()
        s = self._state
        self._state = DependentState(
            "model", self.name, s.keys, builds=s.builds, failures=s.failures + 1,
            built_at=s.built_at, error=message,
            failed_keys=tuple(f"{p.namespace}:{p.key}" for p in error.problems),
            failing_since=s.failing_since or now)
        self._report()

    def _accepted(self) -> None:
        s = self._state
        self._state = DependentState("model", s.name, s.keys, builds=s.builds + 1,
                                     failures=s.failures, built_at=time.time())
        self._report()

    def _report(self) -> None:
        try:
            self._report_to(self._state)
        except Exception:  # noqa: BLE001 - a status write must not fail an apply
            log.debug("hotconf: recording %s's state failed", self.name, exc_info=True)

    @property
    def state(self) -> DependentState:
        return self._state

    # -- listeners ----------------------------------------------------------------------------------
    def on_change(self, callback: ModelListener) -> ModelListener:
        if not callable(callback):
            raise TypeError(f"on_change needs a callable, got {callback!r}")
        with self._lock:
            if callback not in self._listeners:
                self._listeners.append(callback)
        return callback

    def _post(self, listener: ModelListener, old: Any, new: Any) -> None:
        mailbox = self._mailboxes.get(id(listener))
        if mailbox is None or not mailbox.usable:
            mailbox = self._mailboxes[id(listener)] = self._mailbox(listener, "model listener")
        mailbox.post([(old, new)])

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._mailboxes = {}

    def stop(self) -> None:
        for mailbox in list(self._mailboxes.values()):
            mailbox.close()
        self._mailboxes = {}


def _on_change(self: Any, callback: Optional[ModelListener] = None) -> Any:
    """``settings.on_change(cb)``: call ``cb(old, new)`` (model instances) on a hotconf thread
    (an ``async def`` one on the loop bound by ``await cfg.ready()``) after each release that
    changes a field value; usable as a decorator."""
    binder: Binder = type(self).__hotconf_binder__
    return binder.on_change if callback is None else binder.on_change(callback)


def _live_instance(model: Type[M], first: M, binder: Binder) -> M:
    if "on_change" in getattr(first, "__dict__", {}):
        raise TypeError(f"cfg.bind({model.__qualname__}): a field named 'on_change' would hide "
                        f"the model's listener method; rename the field (and give it its key "
                        f"explicitly)")
    if not hasattr(first, "__dict__"):
        raise TypeError(f"cfg.bind({model.__qualname__}): the model has no __dict__ (a dataclass "
                        f"with slots=True?): hotconf swaps a release in by replacing it; drop "
                        f"slots=True")
    live_class = type(model.__name__, (model,), {
        "on_change": _on_change, "__hotconf_binder__": binder, "__eq__": _equal,
        "__hash__": None, "__reduce_ex__": _reduce_ex,
        "__qualname__": model.__qualname__, "__module__": model.__module__})
    live: M = object.__new__(live_class)
    _swap(live, first)
    return live


def _equal(self: Any, other: Any) -> Any:
    """The live object equals a model instance with the same values (and the other way round:
    Python asks this side when the model's own ``__eq__`` declines another class)."""
    binder: Binder = type(self).__hotconf_binder__
    if not isinstance(other, binder.schema.model):
        return NotImplemented
    return binder.schema.values(self) == binder.schema.values(other)


def _reduce_ex(self: Any, protocol: Any) -> Any:
    """Pickled (and copied) as the plain model instance it holds now: the live class is made at
    run time and cannot be imported by the unpickling side."""
    current = type(self).__hotconf_binder__.current
    getstate = getattr(current, "__getstate__", None)
    state = getstate() if getstate is not None else dict(current.__dict__)
    return _plain, (type(current), state)


def _plain(model: Type[Any], state: Any) -> Any:
    """A model instance from its pickled state (pydantic's ``__setstate__`` or the fields)."""
    obj = object.__new__(model)
    if hasattr(obj, "__setstate__"):
        obj.__setstate__(state)
    else:
        object.__setattr__(obj, "__dict__", dict(state or {}))
    return obj


_PYDANTIC_STATE = ("__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")


def _swap(live: Any, new: Any) -> None:
    """The fields in one assignment: a reader on another thread sees the old fields or the new,
    never a mix. A pydantic model's set-fields, extras and private attributes follow."""
    object.__setattr__(live, "__dict__", dict(new.__dict__))
    for slot in _PYDANTIC_STATE:
        if hasattr(new, slot):
            value = getattr(new, slot)
            object.__setattr__(live, slot, value.copy() if isinstance(value, (dict, set))
                               else value)
