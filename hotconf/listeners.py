"""Change listeners: registered with interests, called off the poller's thread, isolated.

The guarantee: each listener gets its events in release order, one call at a time, on a thread
of its own (started with the process's first snapshot, or at its first event), or, for an
``async def`` listener, on the event loop bound by ``await cfg.ready()`` (``hotconf.aio``). A
slow or stuck listener delays only itself: never another listener, the poller or a read; one
that raises is logged and gets the next event as usual. ``close`` does not wait for a stuck
listener.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import (
    Any,
    Awaitable,
    Callable,
    Collection,
    Dict,
    FrozenSet,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from .aio import LoopMailbox, LoopRef, is_async
from .changes import ChangeEvent
from .errors import UnknownNamespaceError
from .process.binding import end_threads_before_fork

log = logging.getLogger("hotconf")

#: A plain function (run on a hotconf thread) or an ``async def`` one (run on the bound loop).
Listener = Union[Callable[[ChangeEvent], None], Callable[[ChangeEvent], Awaitable[None]]]


@dataclass(frozen=True)
class Registration:
    callback: Listener
    keys: FrozenSet[str]
    prefixes: Tuple[str, ...]
    namespace: Optional[str]

    def view(self, event: ChangeEvent) -> Optional[ChangeEvent]:
        if self.namespace is not None and self.namespace != event.namespace:
            return None
        return event.only(self.keys, self.prefixes)


class Mailbox:
    """One callback's queue and the thread that calls it, in order: ``post`` a batch of
    argument tuples; each call is isolated (one that raises is logged, the next still runs)."""

    def __init__(self, callback: Callable[..., Any], what: str):
        self.callback = callback
        self.what = what  # for the log: "change listener", "model listener"
        self.queue: queue.Queue[Optional[List[Tuple[Any, ...]]]] = queue.Queue()
        name = getattr(callback, "__qualname__", "listener")
        self.cancelled = False  # removed: what is still queued is dropped
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name=f"hotconf-listener {name}",
                                       daemon=True)
        self.thread.start()

    @property
    def usable(self) -> bool:
        """Its thread runs in this process (one inherited across a fork is gone, though uWSGI
        may still report it alive)."""
        return self.pid == os.getpid() and self.thread.is_alive()

    def post(self, calls: List[Tuple[Any, ...]]) -> None:
        self.queue.put(calls)

    def _run(self) -> None:
        while True:
            calls = self.queue.get()
            if calls is None:
                return
            for args in calls:
                if self.cancelled:
                    break
                try:
                    self.callback(*args)
                except BaseException:  # noqa: BLE001 - even SystemExit: the next call still comes
                    log.exception("hotconf: %s %r failed; other listeners still run", self.what,
                                  self.callback)

    def close(self) -> None:
        self.cancelled = True
        self.queue.put(None)

    def finish(self) -> None:
        """End the thread after what is queued."""
        self.queue.put(None)


AnyMailbox = Union[Mailbox, LoopMailbox]


class Listeners:
    def __init__(self) -> None:
        self._registrations: List[Registration] = []
        self._lock = threading.Lock()
        self._mailboxes: Dict[int, AnyMailbox] = {}  # by id() of the registration
        self.loop = LoopRef()  # where async listeners run (bound by ``await cfg.ready()``)
        end_threads_before_fork(self)

    def mailbox(self, callback: Callable[..., Any], what: str) -> AnyMailbox:
        """A thread of its own for a plain callback; the bound event loop for an async one."""
        if is_async(callback):
            return LoopMailbox(callback, what, self.loop)
        return Mailbox(callback, what)

    def add(self, callback: Listener, keys: Optional[Collection[str]] = None,
            prefixes: Optional[Collection[str]] = None, namespace: Optional[str] = None) -> None:
        if not callable(callback):
            raise TypeError(f"on_change needs a callable, got {callback!r}")
        for name, value in (("keys", keys), ("prefixes", prefixes)):
            if isinstance(value, str):
                raise TypeError(f"{name} must be a list of strings, not the string {value!r}")
        reg = Registration(callback, frozenset(keys or ()), tuple(prefixes or ()), namespace)
        with self._lock:
            # The same callback with the same interests is registered once, as in Java.
            if reg not in self._registrations:
                self._registrations.append(reg)

    def register(self, callback: Optional[Listener], keys: Optional[Collection[str]],
                 prefixes: Optional[Collection[str]], namespace: Optional[str],
                 known: Collection[str]) -> Any:
        """``cfg.on_change``: add ``callback``, or return a decorator that does."""
        if namespace is not None and namespace not in known:
            raise UnknownNamespaceError.of(namespace, known)

        def add(fn: Listener) -> Listener:
            self.add(fn, keys, prefixes, namespace)
            return fn

        return add if callback is None else add(callback)

    def remove(self, callback: Listener) -> bool:
        with self._lock:
            gone = [r for r in self._registrations if r.callback == callback]
            self._registrations = [r for r in self._registrations if r.callback != callback]
            for reg in gone:
                mailbox = self._mailboxes.pop(id(reg), None)
                if mailbox is not None:
                    mailbox.close()
            return bool(gone)

    def dispatch(self, events: Sequence[ChangeEvent], first: bool = False) -> None:
        """Hand each listener its view of ``events`` (called in release order); ``first``: the
        process's first snapshot, which starts the listeners' threads (see ``prepare``)."""
        if first:
            self.prepare()
        if not events or not self._registrations:
            return
        with self._lock:
            for reg in self._registrations:
                views = [v for v in (reg.view(e) for e in events) if v is not None]
                if views:
                    self._mailbox_of(reg).post([(view,) for view in views])

    def _mailbox_of(self, reg: Registration) -> AnyMailbox:
        """The registration's mailbox in this process, made if it has none that works."""
        mailbox = self._mailboxes.get(id(reg))
        if mailbox is None or not mailbox.usable:
            mailbox = self._mailboxes[id(reg)] = self.mailbox(reg.callback, "change listener")
        return mailbox

    def prepare(self) -> None:
        """Start the listeners' threads in this process now (at its first snapshot) rather
        than at the first release: 16 workers each starting a thread at the moment of a
        release made it the slowest of any to reach them all."""
        with self._lock:
            for reg in self._registrations:
                self._mailbox_of(reg)

    def end_threads(self, deadline: float) -> None:
        """This process is about to fork (a Celery main process disarmed): the listeners'
        threads end after what they were handed, waited for until ``deadline``; each gets a
        new one at its next event."""
        with self._lock:
            mailboxes, self._mailboxes = self._mailboxes, {}
        threads = []
        for mailbox in mailboxes.values():
            if isinstance(mailbox, Mailbox) and mailbox.usable:
                mailbox.finish()
                threads.append(mailbox.thread)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def after_fork(self) -> None:
        """In a forked child the listener threads are gone (uWSGI may still report them
        alive): each listener gets a new one at its next event."""
        self._lock = threading.Lock()
        self._mailboxes = {}

    def close(self) -> None:
        with self._lock:
            mailboxes, self._mailboxes = self._mailboxes, {}
        for mailbox in mailboxes.values():
            mailbox.close()

    def __del__(self) -> None:
        # The Config was dropped without stop(): its listener threads end with it.
        for mailbox in list(getattr(self, "_mailboxes", {}).values()):
            mailbox.close()
