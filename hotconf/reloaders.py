"""Reload actions: how a server is told to reload. Graceful only, never brutal.

- uWSGI with lazy-apps: a chain reload (workers replaced one at a time, no stall) through the
  master FIFO (``c``) or ``touch-chain-reload``; without either, a graceful reload.
- uWSGI without lazy-apps: a graceful reload (``uwsgi.reload()``). A chain reload there re-forks
  the old app from the master and changes nothing, so it is never used.
- gunicorn: SIGHUP to the arbiter.
- anything else: the user's ``on_reload`` callable, in each process.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from .errors import HotconfError

log = logging.getLogger("hotconf")

Changes = Dict[Tuple[str, str], Tuple[Optional[str], Optional[str]]]


class ReloadError(HotconfError):
    """The reload could not be triggered; the message says why and what to check."""


@dataclass(frozen=True)
class ReloadRequest:
    """What ``on_reload`` receives: the net changes that called for it and a log-safe summary."""

    changes: Changes
    summary: str


def write_fifo(path: str, command: bytes) -> None:
    """Write a command to a uWSGI master FIFO without ever blocking: ``open()`` of a FIFO that
    no process reads blocks forever, so it is opened non-blocking (ENXIO instead)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ReloadError(f"no FIFO at {path}: is 'master-fifo = {path}' in the [uwsgi] section, "
                          f"and is uWSGI running?") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise ReloadError(f"nothing reads the FIFO {path}: the uWSGI master is not running "
                              f"(or uses another master-fifo)") from None
        raise ReloadError(f"cannot open the FIFO {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            raise ReloadError(f"{path} is not a FIFO: point to uWSGI's master-fifo")
        os.write(fd, command)
    finally:
        os.close(fd)


def signal_pidfile(path: str, sig: int) -> int:
    """Send ``sig`` to the process named in a pidfile; a clear error if it is stale."""
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise ReloadError(f"cannot read the pidfile {path}: {exc.strerror}") from None
    if not text.isdigit() or int(text) <= 1:
        raise ReloadError(f"the pidfile {path} does not hold a process id ({text[:20]!r})")
    pid = int(text)
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        raise ReloadError(f"stale pidfile {path}: no process {pid} is running (is the server "
                          f"down, or was it started with another pidfile?)") from None
    except PermissionError:
        raise ReloadError(f"not allowed to signal process {pid} from {path}: run as the "
                          f"server's user") from None
    return pid


def _opt(name: str) -> Optional[str]:
    import uwsgi  # type: ignore[import-not-found]

    value = uwsgi.opt.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode()
    return value if isinstance(value, str) and value else None


class Reloader:
    """A reload action. ``server_level`` ones run once per server, in the poller's process."""

    server_level = True
    description = "reload"

    def __call__(self, request: ReloadRequest) -> None:
        raise NotImplementedError


class UwsgiReloader(Reloader):
    def __init__(self, lazy: bool):
        self.lazy = lazy
        self.fifo = _opt("master-fifo")
        self.touch = _opt("touch-chain-reload")
        if not lazy:
            self.description = "graceful uWSGI reload"
        elif self.fifo:
            self.description = f"uWSGI chain reload (master FIFO {self.fifo})"
        elif self.touch:
            self.description = f"uWSGI chain reload (touch {self.touch})"
        else:
            self.description = "graceful uWSGI reload (for a chain reload set master-fifo)"

    def __call__(self, request: ReloadRequest) -> None:
        import uwsgi  # type: ignore[import-not-found]

        if self.lazy and self.fifo:
            write_fifo(self.fifo, b"c")
        elif self.lazy and self.touch:
            Path(self.touch).touch()
        else:
            uwsgi.reload()


class GunicornReloader(Reloader):
    description = "gunicorn reload (SIGHUP to the arbiter)"

    def __call__(self, request: ReloadRequest) -> None:
        os.kill(os.getppid(), signal.SIGHUP)  # the poller is a worker: its parent is the arbiter


class CallbackReloader(Reloader):
    server_level = False

    def __init__(self, callback: Callable[[ReloadRequest], None]):
        self.callback = callback
        self.description = f"on_reload callback {getattr(callback, '__qualname__', callback)!s}"

    def __call__(self, request: ReloadRequest) -> None:
        self.callback(request)


class NoReloader(Reloader):
    server_level = False
    description = "nothing (no server to reload and no on_reload callback)"

    def __call__(self, request: ReloadRequest) -> None:
        log.warning("hotconf: %s changed and needs a reload, but nothing can reload this "
                    "process: pass Config(on_reload=...) to rebuild what depends on it",
                    request.summary)


def choose(kind: str, facts, callback: Optional[Callable[[ReloadRequest], None]]) -> Reloader:
    """``kind``: auto, uwsgi, gunicorn, callback or none."""
    if kind == "auto":
        kind = ("uwsgi" if facts.server == "uwsgi" else "gunicorn" if facts.server == "gunicorn"
                else "callback" if callback else "none")
    if kind == "uwsgi":
        return UwsgiReloader(facts.uwsgi_lazy)
    if kind == "gunicorn":
        return GunicornReloader()
    if kind == "callback":
        if callback is None:
            raise ReloadError("reload='callback' needs on_reload=<callable>")
        return CallbackReloader(callback)
    if kind == "none":
        return NoReloader()
    raise ReloadError(f"unknown reload {kind!r}: use auto, uwsgi, gunicorn, callback or none")
