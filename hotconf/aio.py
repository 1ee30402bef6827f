"""asyncio support for ``Config``: ``await cfg.ready()`` and ``async def`` listeners.

Why it exists: in an async app, the first ``cfg.get()`` arms hotconf in the process (the
election, the store, the first fetch): done on the event loop, it blocks every request of the
worker for the whole fetch. ``ready()`` does that work on a thread of the loop's default
executor while the loop keeps running, and binds the loop to the Config.

``async def`` listeners (``cfg.on_change`` and a bound model's ``on_change``) run on that bound
loop: a hotconf thread hands each change over with ``loop.call_soon_threadsafe`` (the only
thread-safe way into a loop), and one task per listener awaits the calls one at a time, in
release order. Every change is delivered; a burst is not coalesced. Until a loop is bound (or
after the bound loop closed) the changes wait, at most ``PENDING_MAX`` per listener, and one
warning says why; binding a loop (the next ``ready()``) delivers them. A closed loop never
raises into hotconf's threads.

Nothing here imports asyncio at module level: ``import hotconf`` stays free of it.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, List, Optional, Protocol, Tuple, TypeVar

from .errors import ConfigUnavailableError

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop

log = logging.getLogger("hotconf")

#: Changes kept per async listener while no loop is bound (the oldest go first past this).
PENDING_MAX = 1000
#: How often ``ready()`` tries the load again while it waits (each try is a dict lookup once
#: the snapshot is there)
RETRY_EVERY = 0.1


class Startable(Protocol):
    def start(self) -> Any: ...

    @property
    def role(self) -> str: ...


S = TypeVar("S", bound=Startable)


class LoopRef:
    """The event loop a Config's async listeners run on: the one that ran ``ready()`` last in
    this process (a loop is not usable in a forked child, nor once closed)."""

    def __init__(self) -> None:
        self._loop: Optional[AbstractEventLoop] = None
        self._pid = 0
        self._lock = threading.Lock()
        self._mailboxes: weakref.WeakSet[LoopMailbox] = weakref.WeakSet()
        self.warned = False

    def bind(self, loop: AbstractEventLoop) -> None:
        with self._lock:
            self._loop, self._pid = loop, os.getpid()
            self.warned = False  # a later loss of this loop is worth saying again
            waiting = list(self._mailboxes)
        for mailbox in waiting:  # changes that came while no loop was bound
            mailbox.kick()

    @property
    def loop(self) -> Optional[AbstractEventLoop]:
        loop = self._loop
        # A loop stopped but not closed (run_until_complete returned) runs no callback: the
        # changes wait for the next ready() as they would with no loop at all.
        if loop is None or self._pid != os.getpid() or loop.is_closed() or \
                not loop.is_running():
            return None
        return loop

    def add(self, mailbox: LoopMailbox) -> None:
        with self._lock:
            self._mailboxes.add(mailbox)


class LoopMailbox:
    """One ``async def`` listener's queue, drained on the bound loop by one task at a time:
    the same contract as ``listeners.Mailbox`` (``post``, ``close``, ``usable``), on a loop
    instead of a thread of its own."""

    def __init__(self, callback: Callable[..., Any], what: str, ref: LoopRef):
        self.callback = callback
        self.what = "async " + what
        self.ref = ref
        self.pid = os.getpid()
        self.cancelled = False
        self._pending: Deque[Tuple[Any, ...]] = deque()
        self._lock = threading.Lock()
        self._draining_on: Optional[AbstractEventLoop] = None  # a drain is due or running there
        self._dropped = 0
        self._task: Optional[Any] = None  # the drain task (asyncio.Task) on the loop
        ref.add(self)

    @property
    def usable(self) -> bool:
        return self.pid == os.getpid() and not self.cancelled

    def post(self, calls: List[Tuple[Any, ...]]) -> None:
        with self._lock:
            if self.cancelled:
                return
            for args in calls:
                if len(self._pending) >= PENDING_MAX:
                    self._pending.popleft()
                    self._dropped += 1
                self._pending.append(args)
        self.kick()

    def kick(self) -> None:
        """Make sure a drain is due on the bound loop if calls are waiting (from any thread)."""
        with self._lock:
            if self.cancelled or not self._pending:
                return
            running = self._draining_on
            if running is not None and not running.is_closed() and running.is_running():
                return  # the drain on the loop takes what was just added
            loop = self.ref.loop
            if loop is None:
                self._draining_on = None
                self._no_loop()
                return
            self._draining_on = loop
        try:
            loop.call_soon_threadsafe(self._start, loop)
        except RuntimeError:  # closed between the check and the call: wait for the next loop
            with self._lock:
                self._draining_on = None
            self._no_loop()

    def _no_loop(self) -> None:
        if self.ref.warned:
            return
        self.ref.warned = True
        log.warning("hotconf: the %s %s has changes to handle but no running event loop is "
                    "bound to its Config in process %d (or the bound loop is closed): call "
                    "'await cfg.ready()' in the app's startup (or use "
                    "hotconf.integrations.asyncio.lifespan); up to %d changes per listener "
                    "are kept until then", self.what, _name(self.callback), os.getpid(),
                    PENDING_MAX)

    def _start(self, loop: AbstractEventLoop) -> None:
        # On the loop. The loop holds tasks weakly: the mailbox keeps its drain alive.
        self._task = loop.create_task(self._drain(loop))

    async def _drain(self, loop: AbstractEventLoop) -> None:
        try:
            while True:
                with self._lock:
                    if self.cancelled or not self._pending or self._draining_on is not loop:
                        if self._draining_on is loop:
                            self._draining_on = None
                        return
                    args = self._pending.popleft()
                    dropped, self._dropped = self._dropped, 0
                if dropped:
                    log.warning("hotconf: the %s %s missed %d older changes (more than %d "
                                "waited for an event loop)", self.what, _name(self.callback),
                                dropped, PENDING_MAX)
                try:
                    await self.callback(*args)
                except Exception:  # noqa: BLE001 - the next call still comes
                    log.exception("hotconf: %s %r failed; other listeners still run", self.what,
                                  self.callback)
        except BaseException:  # cancelled (the loop shuts down): the next post or loop resumes
            with self._lock:
                if self._draining_on is loop:
                    self._draining_on = None
            raise

    def close(self) -> None:
        with self._lock:
            self.cancelled = True
            self._pending.clear()


def is_async(callback: Callable[..., Any]) -> bool:
    """An ``async def`` function (or a callable object whose ``__call__`` is one)."""
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        type(callback).__call__)


def _name(callback: Callable[..., Any]) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)


async def ready(cfg: S, ref: LoopRef, timeout: float) -> S:
    """``await cfg.ready()``: bind the running loop, then load on an executor thread.

    A first read gives up after one window (the poller's first fetch, then the local cache).
    At startup it is worth waiting longer: a worker that follows another process's poller
    waits for its first publish, however many namespaces it fetches, and a poller whose first
    load failed gets its retries (1 s, 2 s, 4 s ...). So the load is tried again while the
    process is armed (polling or following), until ``timeout`` seconds have passed; then
    ``ConfigUnavailableError`` is raised as a read would."""
    import asyncio

    if getattr(getattr(cfg, "_binding", None), "stopped", False):
        raise ConfigUnavailableError(
            "ready() on a Config that was stopped (a lifespan with stop=True ended, or "
            "cfg.stop()): it would serve its last snapshot, frozen. Create a new Config, or "
            "pass lifespan(cfg, stop=False) where the app's lifespan runs more than once in "
            "a process (tests with one TestClient each)")
    loop = asyncio.get_running_loop()
    ref.bind(loop)
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        try:
            # The executor's call cannot be cut short (a fetch waits out its own timeout);
            # ready() does not wait for it past its own.
            await asyncio.wait_for(asyncio.shield(loop.run_in_executor(None, cfg.start)),
                                   max(0.0, remaining))
            return cfg
        except asyncio.TimeoutError:
            raise ConfigUnavailableError(
                f"no configuration within {timeout:g} s (ready(timeout=...)): the config "
                f"service did not answer in time and there is no local cache yet; hotconf "
                f"keeps trying in the background") from None
        except ConfigUnavailableError:
            if loop.time() >= deadline or cfg.role == "idle":  # (idle: stopped, or not armed)
                raise
        await asyncio.sleep(RETRY_EVERY)
