"""asyncio / ASGI integration: a lifespan that loads hotconf before the app serves.

``lifespan(cfg)`` is an ASGI lifespan (what ``FastAPI(lifespan=...)`` and
``Starlette(lifespan=...)`` take): at startup it awaits ``cfg.ready()``, so the first fetch
runs on a thread while the event loop keeps running, the loop is bound for ``async def``
listeners, and the app's own lifespan (if given) starts after it and can read the config. At
shutdown the app's lifespan ends first, then the Config stops (on a thread as well: stopping
aborts a held long poll).

Under ``uvicorn --workers N`` (spawned workers) and ``gunicorn -k uvicorn.workers.UvicornWorker``
(forked from the arbiter, with or without ``--preload``) the lifespan runs in each worker: each
one arms there, one of them polls for the host, the others follow its snapshot.

Nothing from starlette, fastapi or uvicorn is imported: a lifespan is a plain async context
manager factory.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncContextManager, AsyncIterator, Callable, Optional

from ..config import Config
from ..errors import ConfigUnavailableError

log = logging.getLogger("hotconf")

#: What ``FastAPI(lifespan=...)`` takes: ``app -> async context manager`` (yielding the state)
Lifespan = Callable[[Any], AsyncContextManager[Any]]


def lifespan(cfg: Config, app_lifespan: Optional[Callable[[Any], Any]] = None, *,
             stop: bool = True, required: bool = True, timeout: float = 10.0) -> Lifespan:
    """``FastAPI(lifespan=lifespan(cfg, my_lifespan))``: hotconf ready before ``my_lifespan``
    starts (it may read ``cfg``), and stopped after it ends. ``my_lifespan`` is an
    ``@asynccontextmanager`` function (or a bare async generator function) taking the app;
    what it yields (the lifespan state) is passed on.

    ``required``: with no config at all after ``timeout`` seconds (the config service
    unreachable and no local cache), the startup fails with ``ConfigUnavailableError`` (the
    server does not serve without config); ``required=False`` logs it and serves, reads
    raising until the background retry loads. ``stop=False`` leaves the Config running after shutdown (a
    Config shared with something that outlives the app)."""
    inner = app_lifespan
    if inner is not None and inspect.isasyncgenfunction(inner):
        inner = asynccontextmanager(inner)

    @asynccontextmanager
    async def hotconf_lifespan(app: Any) -> AsyncIterator[Any]:
        try:
            try:
                await cfg.ready(timeout)
            except ConfigUnavailableError as exc:
                if required:
                    raise
                log.error("hotconf: starting without config (required=False): %s", exc)
            if inner is None:
                yield None
            else:
                async with inner(app) as state:
                    yield state
        finally:
            if stop:
                await asyncio.get_running_loop().run_in_executor(None, cfg.stop)

    return hotconf_lifespan
