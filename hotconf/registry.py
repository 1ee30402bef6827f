"""The host's registry of the processes serving one configuration (I/O edge).

``{cache_dir}/{key}.procs/{pid}.json``: one small record per armed process, replaced
atomically (temp file + rename, no fsync: it describes processes that are running now), and
``poller.json``: the poller's health. They live in a directory of their own, whatever the
shared store is, so that ``hotconf status`` and a probe in another process can read them, and
so their writes wake nobody: readers watch the cache directory's index, and inotify does not
report what happens in a subdirectory. Records of dead processes (or of a pid since reused,
told by the process's start time) are skipped and removed by whoever reads them. A record
written in another pid namespace (a container's, read from the host through a shared volume)
names a pid the reader cannot check: it is shown, never removed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import List, Optional

from .cache import LocalCache, write_atomically
from .election import PollerLock
from .options import Settings
from .reload.record import ReloadRecord
from .status import STALE_AFTER, HostStatus, PendingReload, PollerHealth, ProcessRecord, host_status

log = logging.getLogger("hotconf")

POLLER_FILE = "poller.json"


def process_started(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (/proc), None where unknown: with
    the pid it names one process, even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    try:
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def pid_namespace(pid: object = "self") -> Optional[int]:
    """The pid namespace of a process (its /proc inode), None where unknown."""
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


def alive(pid: int, started: Optional[int], pidns: Optional[int] = None) -> Optional[bool]:
    """True or False, or None when ``pid`` is another pid namespace's (it cannot be checked)."""
    if pidns is not None and pidns != pid_namespace():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if started is None:
        return True
    now = process_started(pid)
    return now is None or now == started


class Registry:
    def __init__(self, cache_dir: Path, instance_key: str):
        self.dir = Path(cache_dir) / f"{instance_key}.procs"
        self._failed: Optional[str] = None

    def _path(self, pid: int) -> Path:
        return self.dir / f"{pid}.json"

    # -- writing (the processes themselves) --------------------------------------------------------
    def write_process(self, record: ProcessRecord) -> None:
        self._write(self._path(record.pid), record.to_dict())

    def write_poller(self, health: PollerHealth) -> None:
        self._write(self.dir / POLLER_FILE, health.to_dict())

    def remove_process(self, pid: int) -> None:
        try:
            os.unlink(self._path(pid))
        except OSError:
            pass

    def _write(self, path: Path, document: dict) -> None:
        """Never raises: a registry that cannot be written costs visibility, not service."""
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomically(path, json.dumps(document, separators=(",", ":")).encode("utf-8"),
                             durable=False)
        except OSError as exc:
            message = str(exc.strerror or exc)
            if message != self._failed:
                log.warning("hotconf: cannot write the process registry %s (%s): `hotconf "
                            "status` will not show this process", self.dir, message)
            self._failed = message
        else:
            self._failed = None

    # -- reading (status, metrics) ------------------------------------------------------------------
    def processes(self, prune: bool = True) -> List[ProcessRecord]:
        """The records of live processes; dead ones' files are removed (``prune``)."""
        try:
            names = os.listdir(self.dir)
        except OSError:
            return []
        found = []
        for name in names:
            stem, dot, ext = name.partition(".")
            if ext != "json" or not stem.isdigit():
                continue
            record = ProcessRecord.from_dict(_read_json(self.dir / name))
            if record is None:
                continue
            living = alive(record.pid, record.started, record.pidns)
            if living is False:
                if prune:
                    self.remove_process(record.pid)
                continue
            found.append(record)
        return found

    def poller(self) -> Optional[PollerHealth]:
        """The poller's health, if the process that wrote it is alive."""
        health = PollerHealth.from_dict(_read_json(self.dir / POLLER_FILE))
        if health is None or alive(health.pid, health.started, health.pidns) is False:
            return None
        return health


def read_host(settings: Settings, stale_after: float = STALE_AFTER,
              now: Optional[float] = None) -> HostStatus:
    """Everything ``hotconf status`` and the metrics show, read from the host's files: the
    cache index (the host's newest snapshot), the registry, the poller lock, the reload
    record."""
    registry = Registry(settings.cache_dir, settings.instance_key)
    head = LocalCache.for_settings(settings).head()
    records = registry.processes()
    holder = PollerLock(settings.cache_dir / f"{settings.instance_key}.poller.lock").holder_pid()
    health = registry.poller()
    if holder is None:
        health = None
    elif health is None or health.pid != holder:
        health = PollerHealth(pid=holder)  # polling, but has not said more yet
    pending = ReloadRecord(settings.cache_dir / f"{settings.instance_key}.reload").peek()
    return host_status(records, health, head, time.time() if now is None else now, stale_after,
                       PendingReload(pending.summary, pending.due_at) if pending else None)


def _read_json(path: Path) -> object:
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read())
    except (OSError, ValueError):
        return None
