"""gunicorn: which process is the arbiter (master) and which a worker, told from gunicorn's own
objects, and a reload as SIGHUP to the arbiter that spawned this worker.

The arbiter imports the app only with ``--preload``, before forking; a worker runs inside
``Arbiter.spawn_worker`` -> ``Worker.init_process``, and gunicorn records the arbiter's pid in
the worker (``worker.ppid``) at spawn. Both are read off the main thread's stack: no command
line is parsed, so PID 1 in a container, ``tini``, ``dumb-init`` or a shell wrapper that does not
``exec`` change nothing. A process forked by a worker (multiprocessing, a helper) finds a Worker
whose pid is not its own: it is a plain process, and never signals anyone.

The user-facing hook (``post_fork`` for gunicorn.conf.py) is ``hotconf.integrations.gunicorn``.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Dict, Iterator, Optional, Tuple

from ..errors import ReloadError
from ..process.platform import Platform
from ..reload.actions import Reloader
from ..reload.policy import ReloadRequest
from ..runtime import ProcessFacts

log = logging.getLogger("hotconf")

#: pid -> ("arbiter" | "worker" | "other", the arbiter's pid for a worker)
_seen: Dict[int, Tuple[str, Optional[int]]] = {}
_ages: Dict[int, int] = {}  # a worker's age (gunicorn numbers the workers it spawns)


def _frames() -> Iterator[FrameType]:
    """This thread's stack, then the main thread's (a request thread of a gthread worker does
    not have the worker on its own stack; the main thread does)."""
    seen = set()
    main = threading.main_thread().ident
    starts = [sys._getframe(1)]
    main_frame = sys._current_frames().get(main) if main is not None else None
    if main_frame is not None:
        starts.append(main_frame)
    for frame in starts:
        current: Optional[FrameType] = frame
        while current is not None:
            if id(current) not in seen:
                seen.add(id(current))
                yield current
            current = current.f_back


def _kind(value: object, pid: int, types: Tuple[Optional[type], ...]) -> Optional[str]:
    worker_type, arbiter_type, app_type = types
    if worker_type is not None and isinstance(value, worker_type):
        return "worker" if getattr(value, "pid", None) == pid else "a worker's descendant"
    if arbiter_type is not None and isinstance(value, arbiter_type):
        # before start() (--preload) or the running arbiter; else we descend from it
        return "arbiter" if getattr(value, "pid", None) in (None, pid) else "descendant"
    if app_type is not None and isinstance(value, app_type):
        return "application"  # gunicorn's Application: the arbiter, or its descendant
    return None


def classify() -> Tuple[str, Optional[int]]:
    """("arbiter", None), ("worker", arbiter_pid) or ("other", None) for this process.

    First the stacks (cheap). If they tell nothing (a request greenlet of gevent_pywsgi, a
    gunicorn.conf.py read before the Arbiter exists), every object gunicorn made is looked at
    once: a Worker whose pid is ours makes a worker; a descendant of a worker or of a running
    arbiter is "other"; an Arbiter before or at its start, or gunicorn's Application with no
    Arbiter yet, makes the arbiter."""
    pid = os.getpid()
    known = _seen.get(pid)
    if known is not None:
        return known
    types = (getattr(sys.modules.get("gunicorn.workers.base"), "Worker", None),
             getattr(sys.modules.get("gunicorn.arbiter"), "Arbiter", None),
             getattr(sys.modules.get("gunicorn.app.base"), "BaseApplication", None))
    seen: Dict[str, object] = {}
    for frame in _frames():
        for value in list(frame.f_locals.values()):
            kind = _kind(value, pid, types)
            if kind is not None:
                seen.setdefault(kind, value)
    if "worker" not in seen and "arbiter" not in seen:
        for value in gc.get_objects():
            kind = _kind(value, pid, types)
            if kind is not None:
                seen.setdefault(kind, value)
    found: Tuple[str, Optional[int]] = ("other", None)
    if "worker" in seen:
        ppid = getattr(seen["worker"], "ppid", None)
        found = ("worker", ppid if isinstance(ppid, int) and ppid > 0 else None)
        age = getattr(seen["worker"], "age", None)
        if isinstance(age, int):
            _ages[pid] = age
    elif "arbiter" in seen or ("application" in seen and not (
            {"descendant", "a worker's descendant"} & set(seen))):
        found = ("arbiter", None)
    _seen[pid] = found  # a fact of this process for its lifetime (a fork is another pid)
    return found


def arms_after_fork(worker: object) -> bool:
    """Whether hotconf may start in ``worker`` from gunicorn's post_fork hook. Not in a gevent
    or eventlet worker: it monkey-patches only later (in init_process), and threads and locks
    made before the patch do not cooperate with greenlets; such a worker arms on its first
    read, after the patch."""
    module = type(worker).__module__ or ""
    return not module.startswith(("gunicorn.workers.ggevent", "gunicorn.workers.geventlet"))


class GunicornReloader(Reloader):
    """SIGHUP to the arbiter recorded at spawn: never to pid 0 or a process group, never to a
    parent that is not that arbiter (it died and the worker was re-parented)."""

    def __init__(self, arbiter_pid: Optional[int]):
        self.arbiter_pid = arbiter_pid
        self.description = "gunicorn reload (SIGHUP to the arbiter)"

    def __call__(self, request: ReloadRequest) -> None:
        pid = self.arbiter_pid
        if pid is None or pid <= 0:
            raise ReloadError("this process is not a gunicorn worker with a known arbiter: "
                              "nothing was signalled (reload the server by hand: hotconf "
                              "reload --pidfile)")
        if os.getppid() != pid:
            raise ReloadError(f"the gunicorn arbiter (pid {pid}) is no longer this worker's "
                              f"parent: nothing was signalled")
        os.kill(pid, signal.SIGHUP)


class GunicornServer(Platform):
    name = "gunicorn"

    def detect(self) -> Optional[ProcessFacts]:
        if "gunicorn.arbiter" not in sys.modules:
            return None
        kind, arbiter_pid = classify()
        if kind == "other":
            return None  # gunicorn is imported here, but this is not its arbiter or worker
        return ProcessFacts(server="gunicorn", gunicorn_arbiter=kind == "arbiter",
                            gunicorn_arbiter_pid=arbiter_pid, worker=_ages.get(os.getpid()))

    def server_reloader(self, facts: ProcessFacts) -> Reloader:
        return GunicornReloader(facts.gunicorn_arbiter_pid)
