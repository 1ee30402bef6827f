"""A Celery app written the obvious way: a module-level Config, read at import (in the worker's
main process, before the pool forks) and in the tasks; ``init_app`` next to the app. APP_ID,
APOLLO_META and APOLLO_CACHE_DIR come from the environment, the broker from CELERY_BROKER.

For the tests it also writes what happens in the worker to PROBE_LOG (one JSON line each): the
main process's threads at each fork of a pool child and once the worker is ready, and how
long hotconf took to arm each child."""

import json
import logging
import os
import threading
import time
from dataclasses import dataclass

from celery import Celery, signals

from hotconf import Config
from hotconf.integrations.celery import init_app

logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")
logging.getLogger("hotconf").setLevel(logging.DEBUG if os.environ.get("HOTCONF_DEBUG") else
                                      logging.INFO)
PROBE_LOG = os.environ.get("PROBE_LOG")


def probe(event, **fields):
    if PROBE_LOG:
        with open(PROBE_LOG, "a") as out:
            out.write(json.dumps({"event": event, "pid": os.getpid(), "at": time.time(),
                                  **fields}) + "\n")


def hotconf_threads():
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("hotconf"))


@signals.worker_process_init.connect
def arming_begins(**_):  # connected before hotconf's own receiver (the Config comes below)
    global ARMING_BEGAN
    ARMING_BEGAN = time.monotonic()


ARMING_BEGAN = None
broker = os.environ["CELERY_BROKER"]
app = Celery("celery_app", broker=broker, backend=broker)
app.conf.update(worker_pool_restarts=os.environ.get("POOL_RESTARTS") == "1",
                worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
                task_acks_late=False, worker_prefetch_multiplier=1)
RELOAD_ON = [p for p in os.environ.get("RELOAD_ON", "").split(",") if p]
cfg = init_app(app, Config(namespaces=["application"], reload_on=RELOAD_ON,
                           reload_wait=(1.0, 4.0), reload_min_interval=2.0))


@dataclass
class Limits:
    timeout: float = 1.0


@cfg.on_change  # before the read at import: its thread must not stay for the pool's forks
def changed(event):  # in each child, as each release is applied there
    probe("change", release=event.release_key, role=cfg.role)


limits = cfg.bind(Limits, prefix="limits")  # bound at import, in the main process
# Many tasks modules read settings at import, in the main process before the pool forks.
GREETING_AT_IMPORT = cfg.get("greeting") if os.environ.get("READ_AT_IMPORT", "1") == "1" else None
DB_AT_IMPORT = cfg.get("db.url") if GREETING_AT_IMPORT is not None else None
connection = {}  # built in each pool child after the fork (the Celery idiom), from db.url


@signals.worker_process_init.connect
def connect_db(**_):  # after hotconf's receiver: this child is armed
    connection.update(url=cfg.get("db.url"), pid=os.getpid())
    probe("process_init", arm_ms=(time.monotonic() - ARMING_BEGAN) * 1000, role=cfg.role)


@signals.worker_before_create_process.connect
def before_fork(**_):
    probe("before_fork", threads=hotconf_threads(), role=cfg.role)


@signals.worker_ready.connect
def ready(**_):
    probe("ready", threads=hotconf_threads(), role=cfg.role)


@app.task
def check_cost(calls=20000):
    """What the check before each task costs in this child (seconds per call)."""
    started = time.perf_counter()
    for _ in range(calls):
        cfg.check()
    return {"pid": os.getpid(), "role": cfg.role,
            "per_call": (time.perf_counter() - started) / calls}


@app.task
def read(sleep=0.0, key="greeting"):
    time.sleep(sleep)  # lets a test reach every child
    return {"pid": os.getpid(), "value": cfg.get(key), "role": cfg.role,
            "timeout": limits.timeout, "db": connection.get("url"), "db_at_import": DB_AT_IMPORT,
            "at_import": GREETING_AT_IMPORT}
