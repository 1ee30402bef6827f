"""Telling a running server to reload from outside it: SIGHUP to a pidfile's process, or a
command to uWSGI's master FIFO. Used by the reload actions and by ``hotconf reload``."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import ReloadError


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
