"""Change listeners: registered with interests, called off the poller's thread, isolated.

Events are delivered in order on one dispatcher thread per Config, so a slow listener delays
other listeners but never the poller or a reader, and one that raises is logged and skipped.
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Collection, FrozenSet, List, Optional, Sequence, Tuple

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


class Listeners:
    def __init__(self, name: str = "hotconf-listeners"):
        self._name = name
        self._registrations: List[Registration] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[Optional[Sequence[ChangeEvent]]] = queue.Queue()
        self._thread: Optional[threading.Thread] = None

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
            before = len(self._registrations)
            self._registrations = [r for r in self._registrations if r.callback != callback]
            return len(self._registrations) != before

    def dispatch(self, events: Sequence[ChangeEvent]) -> None:
        if not events or not self._registrations:
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._queue = queue.Queue()
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put(list(events))

    def _run(self) -> None:
        while True:
            events = self._queue.get()
            if events is None:
                return
            for event in events:
                for reg in list(self._registrations):
                    view = reg.view(event)
                    if view is None:
                        continue
                    try:
                        reg.callback(view)
                    except Exception:  # noqa: BLE001 - isolate listeners from each other
                        log.exception("hotconf: change listener %r failed on namespace %r; "
                                      "other listeners still run", reg.callback, event.namespace)

    def after_fork(self) -> None:
        """In a forked child the dispatcher thread is gone (uWSGI may still report it alive)."""
        self._lock = threading.Lock()
        self._thread = None
        self._queue = queue.Queue()

    def close(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
            self._thread = None
