"""Celery: which process is a worker's main process and which a pool child, the worker's
lifecycle signals hotconf follows, and a reload as a restart of the pool.

A prefork worker's main process imports the app and its tasks modules, then forks the pool's
children (billiard, with ``os.fork``: Python's at-fork hooks run in them), and forks again
whenever a child dies or is recycled. Like a uWSGI master it never runs a hotconf thread: a
read there loads once, synchronously, and starts nothing; each child arms right after its fork
(``worker_process_init``). The solo, threads, gevent and eventlet pools run the tasks in the
main process itself: it arms once the worker is ready and polls or reads as any process.

A worker's main process is known without parsing a command line:
- under the ``celery ... worker`` command, from the app's import on: click is running Celery's
  ``celery`` group with ``worker`` as its subcommand, in the process that imported hotconf (a
  process forked later is not that one);
- a worker started from code (``app.worker_main()``, ``app.Worker().start()``): at
  ``import_modules`` with a WorkController on the stack, at the latest at ``worker_init``. A
  Config armed before that (a read at the app's import) is disarmed then: its threads end, its
  long poll closes and the poller lock passes to a child; it keeps serving its snapshot;
- ``worker_init`` says which pool; until then the main process is taken to fork.
A pool child is a billiard pool process whose parent is a known main process, or one that
said so at ``worker_process_init``; its row in ``hotconf status`` has its pool slot (billiard's
index + 1: a replaced child keeps the slot of the one it replaces).

Celery is never imported here before it is in ``sys.modules`` (the core install has none).
The user-facing call is ``hotconf.integrations.celery.init_app``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..process.binding import arm_all, disarm_all
from ..process.platform import Platform
from ..reload.actions import Reloader
from ..reload.policy import ReloadRequest
from ..runtime import ProcessFacts, celery_pool_restart_problem

log = logging.getLogger("hotconf")

#: How long a pool child's ``worker_process_init`` waits for hotconf to arm. Celery kills a
#: child that has not said it is up within ``worker_proc_alive_timeout`` (4 s by default);
#: arming goes on in the background past this, and a task's first read waits for it.
ARM_WAIT = 1.5


@dataclass
class _Worker:
    """What is known of a Celery worker's main process (by its pid; a child inherits it)."""

    pool: Optional[str] = None  # "prefork", "solo", "threads", "gevent", ...; None: not said yet
    hostname: Optional[str] = None
    app: Any = None

    @property
    def forks(self) -> bool:
        return self.pool in (None, "prefork")


@dataclass(frozen=True)
class _Child:
    slot: Optional[int]
    hostname: Optional[str]


_workers: Dict[int, _Worker] = {}
_children: Dict[int, _Child] = {}
_apps: List[Any] = []  # the apps given to init_app (a spawned child's reload needs one)
_IMPORTED_IN = os.getpid()  # the process that imported hotconf: the celery command's own
_follow_lock = threading.Lock()
_following = False


def _under_worker_command() -> bool:
    """Is this process running ``celery ... worker``? While the app is imported, click runs
    Celery's ``celery`` group with ``worker`` as its subcommand (``app.worker_main()`` too)."""
    command = sys.modules.get("celery.bin.celery")
    click = sys.modules.get("click")
    if command is None or click is None:
        return False
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.find_root().command is not getattr(command, "celery", None):
        return False
    while ctx is not None:
        if ctx.invoked_subcommand == "worker" or (ctx.info_name == "worker" and
                                                   ctx.parent is not None):
            return True
        ctx = ctx.parent
    return False


def _worker_on_stack() -> bool:
    """A Celery WorkController is being built or run on this thread (a worker started from
    code, whose command line hotconf never reads)."""
    module = sys.modules.get("celery.worker.worker")
    controller = getattr(module, "WorkController", None)
    if controller is None:
        return False
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None:
        if any(isinstance(value, controller) for value in list(frame.f_locals.values())):
            return True
        frame = frame.f_back
    return False


def _pool_index() -> Optional[int]:
    """billiard's index of this pool process (0 for the first child), None elsewhere."""
    process = sys.modules.get("billiard.process")
    index = getattr(process.current_process(), "index", None) if process is not None else None
    return index if isinstance(index, int) else None


def _celery(module: str) -> Any:
    """A module of Celery's, imported by name (Celery ships no type information; it is loaded
    only in a process that already runs it)."""
    return importlib.import_module(module)


def _pool_name(pool_cls: Any) -> str:
    concurrency = _celery("celery.concurrency")
    prefork = _celery("celery.concurrency.prefork").TaskPool
    try:
        cls = concurrency.get_implementation(pool_cls)
    except Exception:  # noqa: BLE001 - an unknown pool is not one that forks
        return str(pool_cls)
    if isinstance(cls, type) and issubclass(cls, prefork):
        return "prefork"
    target = f"{getattr(cls, '__module__', '')}:{getattr(cls, '__qualname__', '')}"
    for alias, path in concurrency.ALIASES.items():
        if path == target:
            return alias
    return getattr(cls, "__name__", str(cls))


# -- the worker's lifecycle ----------------------------------------------------------------------
def _on_import_modules(sender: Any = None, **_: Any) -> None:
    """Main process of a worker started from code, before its tasks modules are imported."""
    if os.getpid() not in _children and _worker_on_stack():
        _workers.setdefault(os.getpid(), _Worker(app=sender))
        _disarm("a Celery worker's main process")


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    """The main process, before the pool starts: which pool, which node."""
    worker = _workers.setdefault(os.getpid(), _Worker())
    worker.pool = _pool_name(getattr(sender, "pool_cls", None))
    worker.hostname = getattr(sender, "hostname", None)
    worker.app = getattr(sender, "app", None) or worker.app
    if worker.forks:
        _disarm(f"a Celery worker's main process ({worker.pool} pool)")


def _on_before_fork(**_: Any) -> None:
    """The main process, before each child of the pool is forked: nothing of hotconf runs."""
    _disarm("a Celery worker's main process")


def _on_process_init(sender: Any = None, **_: Any) -> None:
    """In each pool child right after its fork (the solo pool sends it in the main process,
    which arms once the worker is ready). Returns within ``ARM_WAIT``."""
    pid = os.getpid()
    if pid in _workers:
        return
    index = _pool_index()
    _children[pid] = _Child(index + 1 if index is not None else None,
                            sender if isinstance(sender, str) else None)
    done = threading.Event()

    def arm() -> None:
        try:
            arm_all()
        finally:
            done.set()

    started = time.monotonic()
    threading.Thread(target=arm, name="hotconf-arm", daemon=True).start()
    if not done.wait(ARM_WAIT):
        log.warning("hotconf: arming pool process %d takes longer than %.1f s (is the config "
                    "service slow?); it goes on in the background and the first task waits "
                    "for it", pid, ARM_WAIT)
    else:
        log.debug("hotconf: pool process %d armed in %.1f ms", pid,
                  (time.monotonic() - started) * 1000)


def _on_worker_ready(**_: Any) -> None:
    """A pool that runs tasks in the main process (solo, threads, gevent): arm it now."""
    worker = _workers.get(os.getpid())
    if worker is not None and not worker.forks:
        arm_all()


def _on_process_shutdown(**_: Any) -> None:
    """A pool child about to exit (recycled, or the worker stops): hand the poller lock over
    now rather than when billiard's exit ends the process a second later."""
    if os.getpid() in _children:
        disarm_all(wait=0.5)


def _disarm(what: str) -> None:
    disarmed = disarm_all()
    if disarmed:
        log.info("hotconf: process %d is %s and forks the pool: it stopped polling and "
                 "watching for %s (it armed before Celery said so); each child arms after the "
                 "fork", os.getpid(), what, ", ".join(sorted({b.settings.app_id
                                                             for b in disarmed})))


def follow_workers() -> None:
    """Connect the worker's lifecycle signals (once per process; needs celery imported)."""
    global _following
    with _follow_lock:
        if _following:
            return
        signals = _celery("celery.signals")
        for signal, receiver in (
                (signals.import_modules, _on_import_modules),
                (signals.worker_init, _on_worker_init),
                (getattr(signals, "worker_before_create_process", None), _on_before_fork),
                (signals.worker_process_init, _on_process_init),
                (signals.worker_ready, _on_worker_ready),
                (signals.worker_process_shutdown, _on_process_shutdown)):
            if signal is not None:  # (worker_before_create_process: Celery 5.3 and later)
                signal.connect(receiver, weak=False, dispatch_uid=f"hotconf.{receiver.__name__}")
        _following = True


def attach(app: Any, check: Callable[[], None]) -> None:
    """``init_app``: follow this app's workers, and run ``check`` (a Config's freshness check)
    before each task (a second call with the same ``check`` changes nothing)."""
    if all(known is not app for known in _apps):
        _apps.append(app)
    follow_workers()

    def check_before_task(**_: Any) -> None:
        check()  # a version read; a newer snapshot is swapped in before the task runs

    _celery("celery.signals").task_prerun.connect(
        check_before_task, weak=False,
        dispatch_uid=f"hotconf.task_prerun.{id(getattr(check, '__self__', check))}")


# -- reloads ---------------------------------------------------------------------------------------
class CeleryPoolRestart(Reloader):
    """Celery's remote-control ``pool_restart``, sent to this worker alone (its node name):
    the main process lets each child finish its task and forks a new one. The new children
    inherit the main process's import as it is (see README: what a pool restart applies)."""

    def __init__(self, app: Any, hostname: str):
        self.app, self.hostname = app, hostname
        self.description = f"Celery pool restart of {hostname} (remote control pool_restart)"

    def __call__(self, request: ReloadRequest) -> None:
        self.app.control.pool_restart(destination=[self.hostname], reply=False)


class CeleryRestartNeeded(Reloader):
    """No pool restart is possible here: the change is logged once (by the poller's process)
    with what to do, a worker restart."""

    def __init__(self, problem: str):
        self.description = f"nothing restarted ({problem}); restart the Celery worker to apply it"

    def __call__(self, request: ReloadRequest) -> None:
        pass


def _this_worker() -> Tuple[Any, Optional[str], str]:
    """(app, node name, pool) of the worker this process belongs to."""
    pid = os.getpid()
    own = _workers.get(pid)
    if own is not None:  # a pool that runs the tasks in the main process
        return own.app, own.hostname, own.pool or "prefork"
    parent = _workers.get(os.getppid())
    child = _children.get(pid)
    app = parent.app if parent is not None and parent.app is not None else (
        _apps[0] if _apps else None)
    hostname = parent.hostname if parent is not None else None
    return app, hostname or (child.hostname if child is not None else None), "prefork"


class CeleryServer(Platform):
    name = "celery"

    def detect(self) -> Optional[ProcessFacts]:
        if "celery" not in sys.modules:
            return None
        if "celery.signals" in sys.modules and not _following:
            follow_workers()  # a worker without init_app still arms its children
        pid = os.getpid()
        worker = _workers.get(pid)
        if worker is None and pid == _IMPORTED_IN and _under_worker_command():
            worker = _workers.setdefault(pid, _Worker())
        if worker is not None:
            return ProcessFacts(server="celery", celery_main=worker.forks)
        child = _children.get(pid)
        if child is not None:
            return ProcessFacts(server="celery", worker=child.slot)
        if os.getppid() in _workers:
            index = _pool_index()  # a child before worker_process_init reached hotconf
            if index is not None:
                return ProcessFacts(server="celery", worker=index + 1)
        return None

    def server_reloader(self, facts: ProcessFacts) -> Optional[Reloader]:
        if facts.server != "celery":
            return None
        app, hostname, pool = _this_worker()
        if app is None or hostname is None:
            return CeleryRestartNeeded("hotconf does not know this worker's Celery app: call "
                                       "hotconf.integrations.celery.init_app(app, cfg)")
        conf = app.conf
        problem = celery_pool_restart_problem(pool, bool(conf.worker_pool_restarts),
                                              bool(conf.worker_enable_remote_control))
        if problem is not None:
            return CeleryRestartNeeded(problem)
        return CeleryPoolRestart(app, hostname)
