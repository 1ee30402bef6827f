"""A Celery app that reads its config from Apollo through hotconf, written the obvious way:
one module-level Config next to the app, read in the tasks, and ``init_app`` once.

APP_ID, APOLLO_META (or APOLLO_CONFIG_SERVICE) and APOLLO_CACHE_DIR come from the environment,
the broker from CELERY_BROKER_URL. Run: ``celery -A tasks worker --concurrency 2``.
"""

import logging
import os
import time
import uuid

from celery import Celery, signals

from hotconf import Config
from hotconf.integrations.celery import init_app

logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")

broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
app = Celery("tasks", broker=broker, backend=broker)
# A release that changes a reload_on key restarts the pool (Celery's pool_restart): every
# child finishes its task and is forked again. Without this, hotconf logs that the worker
# needs a restart.
app.conf.worker_pool_restarts = True

# The main process reads nothing here; if a tasks module does (at import), that is one load,
# and it still polls nothing: the pool's children do, one of them for the whole host.
cfg = init_app(app, Config(namespaces=["application"], reload_on=["smtp.*"]))


class Mailer:
    """Stands for a client a child builds once after its fork (an SMTP or API client)."""

    def __init__(self, host: str):
        self.host, self.id = host, uuid.uuid4().hex[:6]


mailer = None


@signals.worker_process_init.connect
def build_mailer(**_):
    # Built in each child after the fork, from a reload_on key: a pool restart builds it anew.
    global mailer
    mailer = Mailer(cfg.get("smtp.host", "localhost"))


# Better still for such objects: a resource, rebuilt in every child with no restart at all.
db = cfg.resource(lambda c: {"url": c.get("db.url", "sqlite://"), "id": uuid.uuid4().hex[:6]},
                  keys=["db.*"], name="db")


@app.task
def greet(name: str) -> dict:
    time.sleep(0.2)  # so that concurrent calls reach every child
    return {"pid": os.getpid(), "greeting": f"{cfg.get('greeting', 'hello')}, {name}",
            "smtp": mailer.host if mailer else None, "db": db()["url"], "role": cfg.role}
