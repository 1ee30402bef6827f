"""Change listeners: registered with interests, called off the poller's thread, isolated.

The guarantee: each listener gets its events in release order, one call at a time, on a thread
of its own (made at its first event). A slow or stuck listener delays only itself: never another
listener, the poller or a read; one that raises is logged and gets the next event as usual.
``close`` does not wait for a stuck listener.
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Collection, Dict, FrozenSet, List, Optional, Sequence, Tuple

from .changes import ChangeEvent

log = logging.getLogger("hotconf")

Listener = Callable[[ChangeEvent], None]


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


class _Mailbox:
    """One listener's queue and the thread that calls it, in order."""

    def __init__(self, registration: Registration):
        self.registration = registration
        self.queue: queue.Queue[Optional[List[ChangeEvent]]] = queue.Queue()
        name = getattr(registration.callback, "__qualname__", "listener")
        self.cancelled = False  # removed: what is still queued is dropped
        self.thread = threading.Thread(target=self._run, name=f"hotconf-listener {name}",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        reg = self.registration
        while True:
            events = self.queue.get()
            if events is None:
                return
            for event in events:
                if self.cancelled:
                    break
                try:
                    reg.callback(event)
                except BaseException:  # noqa: BLE001 - even SystemExit: the next event still comes
                    log.exception("hotconf: change listener %r failed on namespace %r; "
                                  "other listeners still run", reg.callback, event.namespace)

    def close(self) -> None:
        self.cancelled = True
        self.queue.put(None)


class Listeners:
    def __init__(self) -> None:
        self._registrations: List[Registration] = []
        self._lock = threading.Lock()
        self._mailboxes: Dict[int, _Mailbox] = {}  # by id() of the registration

    def add(self, callback: Listener, keys: Optional[Collection[str]] = None,
            prefixes: Optional[Collection[str]] = None, namespace: Optional[str] = None) -> None:
        if not callable(callback):
            raise TypeError(f"on_change needs a callable, got {callback!r}")
        if inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
                type(callback).__call__):
            raise TypeError(
                f"on_change got a coroutine function ({getattr(callback, '__qualname__', callback)}"
                f"): listeners run on a hotconf thread, where nothing would await it. Pass a plain "
                f"function; to run async code, hand it to your loop from there with "
                f"asyncio.run_coroutine_threadsafe(coro, loop)")
        for name, value in (("keys", keys), ("prefixes", prefixes)):
            if isinstance(value, str):
                raise TypeError(f"{name} must be a list of strings, not the string {value!r}")
        reg = Registration(callback, frozenset(keys or ()), tuple(prefixes or ()), namespace)
        with self._lock:
            # The same callback with the same interests is registered once, as in Java.
            if reg not in self._registrations:
                self._registrations.append(reg)

    def remove(self, callback: Listener) -> bool:
        with self._lock:
            gone = [r for r in self._registrations if r.callback == callback]
            self._registrations = [r for r in self._registrations if r.callback != callback]
            for reg in gone:
                mailbox = self._mailboxes.pop(id(reg), None)
                if mailbox is not None:
                    mailbox.close()
            return bool(gone)

    def dispatch(self, events: Sequence[ChangeEvent]) -> None:
        """Hand each listener its view of ``events`` (called in release order)."""
        if not events or not self._registrations:
            return
        with self._lock:
            for reg in self._registrations:
                views = [v for v in (reg.view(e) for e in events) if v is not None]
                if not views:
                    continue
                mailbox = self._mailboxes.get(id(reg))
                if mailbox is None or not mailbox.thread.is_alive():
                    mailbox = self._mailboxes[id(reg)] = _Mailbox(reg)
                mailbox.queue.put(views)

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
