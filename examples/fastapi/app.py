"""A FastAPI app with hotconf: one module-level Config, loaded at startup without blocking the
event loop, typed settings as a dependency, an async listener, a per-process client rebuilt on
change. APP_ID and APOLLO_META (or APOLLO_CONFIG_SERVICE) come from the environment.

    uvicorn app:app --workers 2
    gunicorn -k uvicorn.workers.UvicornWorker -w 2 app:app
"""

import asyncio
import logging
import os
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Depends, FastAPI

from hotconf import ChangeEvent, Config
from hotconf.integrations.fastapi import lifespan, settings

logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")
log = logging.getLogger("app")

cfg = Config(namespaces=["application"])  # pure: nothing runs until the lifespan starts


@dataclass
class Greeting:
    """Typed settings: greeting.text, greeting.punctuation (a release that does not validate
    is not applied: the last valid values stay)."""

    text: str = "hello"
    punctuation: str = "!"


greeting = settings(cfg, Greeting, prefix="greeting")  # bound once per worker, at first use


class Backend:
    """Stands for an async HTTP or database client built from backend.url (create it in the
    factory, connect lazily)."""

    def __init__(self, url: str):
        self.url, self.id, self.pid = url, uuid.uuid4().hex[:6], os.getpid()

    def close(self) -> None:
        log.info("client %s to %s closed", self.id, self.url)


# Built in each worker at its first use; rebuilt in every worker when backend.* changes.
backend = cfg.resource(lambda c: Backend(c.get("backend.url", "http://localhost:9000")),
                       keys=["backend.*"], name="backend")


@cfg.on_change(prefixes=["greeting."])
async def greeting_changed(event: ChangeEvent) -> None:
    """Runs on this worker's event loop, one call at a time, in release order."""
    for key, (old, new, kind) in event.changes.items():
        log.info("%s %s: %r -> %r", key, kind.value, old, new)


@asynccontextmanager
async def app_lifespan(app: FastAPI):
    # hotconf is loaded here already: the app's own startup may read the config.
    log.info("starting with greeting %r", cfg.get("greeting.text", "hello"))
    # A resource is built at its first use, on the caller's thread: build this worker's
    # client now, off the event loop (a rebuild later runs on a hotconf thread).
    await asyncio.get_running_loop().run_in_executor(None, backend)
    yield


app = FastAPI(lifespan=lifespan(cfg, app_lifespan))


@app.get("/")
async def index(g: Greeting = Depends(greeting)):  # noqa: B008 - FastAPI's idiom
    client = backend()
    return {"pid": os.getpid(), "greeting": f"{g.text}{g.punctuation}", "role": cfg.role,
            "backend": client.url, "client": client.id}
