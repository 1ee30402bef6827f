"""Where are we running, and what may this process do? (pure) The facts are gathered by the
server modules (``hotconf.servers``); the decisions on them are pure functions, tested on every
combination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

POLLER_AUTO, POLLER_MULE, POLLER_NEVER = "auto", "mule", "never"
POLLER_CHOICES = (POLLER_AUTO, POLLER_MULE, POLLER_NEVER)


@dataclass(frozen=True)
class ProcessFacts:
    server: str = "other"              # "uwsgi", "gunicorn", "celery" or "other"
    uwsgi_master: bool = False         # loads the app before uWSGI forks (master, or no master)
    uwsgi_mule: bool = False
    uwsgi_threads: bool = True         # uwsgi.has_threads
    uwsgi_version: str = ""
    uwsgi_lazy: bool = False
    uwsgi_cache: Optional[Tuple[str, int, bool]] = None  # (name, blocksize, bitmap) of "hotconf"
    gunicorn_arbiter: bool = False     # gunicorn's master (the app is imported there with --preload)
    gunicorn_arbiter_pid: Optional[int] = None  # a worker's arbiter, as gunicorn recorded it
    celery_main: bool = False          # a Celery worker's main process whose pool forks (prefork)
    worker: Optional[int] = None       # uWSGI worker id, gunicorn worker age, Celery pool slot
    mule: Optional[int] = None         # uWSGI mule id


def will_fork(facts: ProcessFacts) -> bool:
    """A master that forks workers later must run no thread: a thread holding a lock at fork
    time leaves that lock held forever in the children (they hang). A Celery worker's main
    process forks its pool at start and again whenever a child dies or is recycled."""
    return facts.uwsgi_master or facts.gunicorn_arbiter or facts.celery_main


def reload_keeps_import(facts: ProcessFacts) -> bool:
    """Does a server reload re-fork the workers from this very process, so they inherit its
    import as it is? gunicorn's arbiter with --preload keeps its import across a HUP, and a
    Celery pool restart re-forks the children from the main process: a value read here at
    startup changes only with a restart of the whole server."""
    return facts.gunicorn_arbiter or facts.celery_main


def celery_pool_restart_problem(pool: str, pool_restarts: bool,
                                remote_control: bool) -> Optional[str]:
    """Why a Celery worker cannot apply a ``reload_on`` change by restarting its pool (None:
    it can). A pool restart is Celery's remote-control ``pool_restart``: the prefork pool only,
    only with ``worker_pool_restarts = True``, and delivered through the broker's broadcast."""
    if pool != "prefork":
        return f"the {pool} pool runs the tasks in the worker's own process"
    if not pool_restarts:
        return "pool restarts are off: set worker_pool_restarts = True to have hotconf restart it"
    if not remote_control:
        return "remote control is off: a pool restart is sent as a remote-control command"
    return None


def competes_for_poller(facts: ProcessFacts, poller: str) -> bool:
    """May this process become the host's poller? Workers always may, but hand the role to a
    hotconf mule that claims it (``claims_poller``): so they stand in while uWSGI respawns a
    mule that died, and the host never waits for the respawn."""
    if facts.server == "uwsgi" and not facts.uwsgi_threads and not facts.uwsgi_mule:
        # A worker without threads would hold the lock and never poll (a mule's threads run
        # while run_mule waits, so a mule still may).
        return False
    return not will_fork(facts) and poller != POLLER_NEVER


def claims_poller(facts: ProcessFacts, run_mule: bool) -> bool:
    """Is this process the host's preferred poller, that others hand the role back to? A uWSGI
    mule running hotconf's ``run_mule`` is: the operator set it aside for this work. Not any
    mule: an app's task mule may hold the GIL for seconds, or exit and be respawned often."""
    return run_mule and facts.server == "uwsgi" and facts.uwsgi_mule


def stands_in_only(facts: ProcessFacts, poller: str) -> bool:
    """With ``poller="mule"`` a uWSGI worker leaves the start to the mule (it arms a moment
    later than the workers): it competes only after a grace, then stands in as any worker."""
    return poller == POLLER_MULE and facts.server == "uwsgi" and not facts.uwsgi_mule


def store_kind(facts: ProcessFacts, requested: str) -> str:
    if requested != "auto":
        return requested
    if facts.server == "uwsgi" and facts.uwsgi_cache is not None:
        return "uwsgi"
    return "file"


def threads_problem(facts: ProcessFacts) -> Optional[str]:
    """The error to log when this uWSGI process cannot run hotconf's threads."""
    if facts.server != "uwsgi" or facts.uwsgi_threads or facts.uwsgi_master:
        return None
    version = f" {facts.uwsgi_version}" if facts.uwsgi_version else ""
    return (f"hotconf: Python threads are disabled in this uWSGI{version}, so hotconf's poller "
            f"and change watcher cannot run and this process would serve stale config. Add "
            f"'enable-threads = true' to the [uwsgi] section (or --enable-threads); uWSGI "
            f"2.0.27 and later enable threads by default")


def parse_cache2(value: object, name: str = "hotconf") -> Optional[Tuple[str, int, bool]]:
    """Find ``cache2 = name=hotconf,items=...,blocksize=...`` in ``uwsgi.opt`` values."""
    values = value if isinstance(value, (list, tuple)) else [value]
    for raw in values:
        text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        if fields.get("name") == name:
            size = fields.get("blocksize", "65536")
            bitmap = fields.get("bitmap", "0") not in ("0", "false", "")
            return name, int(size) if size.isdigit() else 65536, bitmap
    return None
