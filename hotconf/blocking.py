"""Calls that block in the kernel (a ``flock`` waiting for the poller's lock), made so that they
block nothing else.

In a plain process the caller is a daemon thread of its own and simply blocks. Under gevent's
monkey-patching that "thread" is a greenlet, and a blocking system call in it would freeze the
whole worker: there the call runs in a real OS thread of a gevent thread pool of hotconf's own
(eventlet's ``tpool``) while the green thread waits cooperatively.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, TypeVar

T = TypeVar("T")


_POOLS: Dict[int, Any] = {}


def _gevent_pool() -> Any:
    """hotconf's own gevent thread pool, one per process: a wait that lasts as long as the
    poller lives must not take a thread of the hub's pool, which gevent's DNS resolver uses."""
    pool = _POOLS.get(os.getpid())
    if pool is None:
        from gevent.threadpool import ThreadPool  # type: ignore[import-untyped]

        pool = _POOLS[os.getpid()] = ThreadPool(maxsize=64)
    return pool


def green_threads() -> str:
    """``"gevent"`` or ``"eventlet"`` when that library replaced ``threading`` with green
    threads in this process, else ``""``."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return "gevent"
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        return "eventlet"
    return ""


def call_blocking(fn: Callable[[], T]) -> T:
    """``fn()``, in a real OS thread when threads are green here."""
    kind = green_threads()
    if kind == "gevent":
        return _gevent_pool().apply(fn)  # type: ignore[no-any-return,unused-ignore]
    if kind == "eventlet":
        from eventlet import tpool  # type: ignore[import-not-found,unused-ignore]

        return tpool.execute(fn)  # type: ignore[no-any-return,unused-ignore]
    return fn()
