"""A FastAPI app written as the README says: a module-level Config, hotconf's lifespan wrapping
the app's own, async listeners, a bound model as a dependency. Instrumented for the tests: a
loop-lag probe that starts before hotconf's startup, and a record of every async listener call
(thread, loop, order, overlap). APP_ID, APOLLO_META and APOLLO_CACHE_DIR come from the
environment."""

import asyncio
import logging
import os
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request
from lag_probe import LagProbe

import hotconf
from hotconf import Config
from hotconf.integrations.fastapi import lifespan as hotconf_lifespan
from hotconf.integrations.fastapi import settings

logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")
LISTENER_SLEEP = 0.6  # longer than the tests leave between releases

cfg = Config(namespaces=["application"])


@dataclass
class Greeting:
    greeting: str = ""
    seq: int = 0


greeting_settings = settings(cfg, Greeting)
probe = LagProbe()
calls: list = []  # one dict per call of seq_changed
model_calls: list = []
busy = {"now": 0, "max": 0}


@cfg.on_change(keys=["seq"])
async def seq_changed(event):
    busy["now"] += 1
    busy["max"] = max(busy["max"], busy["now"])
    call = {"seq": int(event.changes["seq"][1]), "thread": threading.get_ident(),
            "loop": id(asyncio.get_running_loop()), "start": time.time()}
    calls.append(call)
    await asyncio.sleep(LISTENER_SLEEP)  # slow: later releases queue behind this call
    call["end"] = time.time()
    busy["now"] -= 1


async def greeting_model_changed(old: Greeting, new: Greeting):
    model_calls.append({"old": old.seq, "new": new.seq, "thread": threading.get_ident(),
                        "loop": id(asyncio.get_running_loop())})


@asynccontextmanager
async def app_lifespan(app):
    """The app's own lifespan: hotconf is ready when it starts (it reads the config)."""
    model = await greeting_settings()  # bound once, off the loop; the same object per request
    model.on_change(greeting_model_changed)
    yield {"greeting_at_startup": cfg.get("greeting")}


@asynccontextmanager
async def instrumented(app):
    """The probe runs from before hotconf's startup until shutdown."""
    probe.start()
    await asyncio.sleep(0.02)  # the probe is sleeping when hotconf's startup begins
    probe.begin("startup")
    async with hotconf_lifespan(cfg, app_lifespan)(app) as state:
        await probe.end("startup")
        yield state
    await probe.stop()


app = FastAPI(lifespan=instrumented)


@app.get("/")
async def index(request: Request, sleep: float = 0.0,
                model: Greeting = Depends(greeting_settings)):  # noqa: B008 - FastAPI's idiom
    await asyncio.sleep(min(sleep, 1.0))  # ?sleep= keeps this worker busy: reach every worker
    return {"pid": os.getpid(), "greeting": cfg.get("greeting"), "role": cfg.role,
            "seq": model.seq, "model_greeting": model.greeting, "model_id": id(model),
            "at_startup": request.state.greeting_at_startup, "thread": threading.get_ident(),
            "loop": id(asyncio.get_running_loop()), "calls": calls, "model_calls": model_calls,
            "busy_max": busy["max"], "lag": probe.report(), "hotconf": hotconf.__file__}
