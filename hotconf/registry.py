"""The host's registry of the processes serving one configuration (I/O edge).

``{cache_dir}/{key}.procs/{pid}-{n}.json``: one small record per armed role of a process (a
process may hold two, e.g. one Config polling and another with ``poller="never"``), and
``poller.json``: the poller's health. Each is created complete (temp file + rename, no fsync:
it describes processes that are running now), then rewritten in place (see ``_RecordFiles``).
They live in a directory of their own, whatever the shared store is, so that ``hotconf status``
and a probe in another process can read them, and so their writes wake nobody: readers watch
the cache directory's index, and inotify does not report what happens in a subdirectory.

Records of dead processes (zombies included; a pid since reused is told by the process's start
time) are skipped and removed by whoever reads them. A record written in another pid namespace
(a container's, read from the host through a shared volume, or the container's previous life)
names a pid the reader cannot check: it counts while its process keeps it fresh (every armed
process rewrites its record at least every 5 minutes) and goes once it has not for
``FOREIGN_TIMEOUT``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .cache import LocalCache, write_atomically
from .election import PollerLock
from .options import Settings
from .reload.record import ReloadRecord
from .status import HostHead, HostStatus, PendingReload, PollerHealth, ProcessRecord, host_status
from .stores.front import FrontCache, front_dir

log = logging.getLogger("hotconf")

POLLER_FILE = "poller.json"

#: A record from another pid namespace not rewritten for this long is a dead process's (a live
#: one rewrites it at least every ``report.CHECK_WRITE_EVERY``).
FOREIGN_TIMEOUT = 900.0

#: A writer's temporary file older than this was left by a process killed mid-write.
TEMP_TIMEOUT = 60.0


def _stat_fields(pid: int) -> Optional[List[bytes]]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split() if b")" in data else None


def process_started(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (/proc), None where unknown: with
    the pid it names one process, even after the pid is reused."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields is not None else None
    except (ValueError, IndexError):
        return None


def pid_namespace(pid: object = "self") -> Optional[int]:
    """The pid namespace of a process (its /proc inode), None where unknown."""
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


class Namespaces:
    """The processes of other pid namespaces this one can see (a container's, from the host):
    read from /proc once, at the first record that needs it."""

    def __init__(self) -> None:
        self._seen: Optional[Dict[int, Dict[int, int]]] = None  # pidns -> {its pid: our pid}

    def find(self, pid: int, pidns: int) -> Tuple[bool, Optional[int]]:
        """(whether any process of ``pidns`` is visible here, our pid for its ``pid``)."""
        if self._seen is None:
            self._seen = _scan_namespaces()
        inside = self._seen.get(pidns)
        return (inside is not None, inside.get(pid) if inside is not None else None)


def _scan_namespaces() -> Dict[int, Dict[int, int]]:
    seen: Dict[int, Dict[int, int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return seen
    for entry in entries:
        try:
            ns = os.stat(f"/proc/{entry}/ns/pid").st_ino
            with open(f"/proc/{entry}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"NSpid:"):
                        seen.setdefault(ns, {})[int(line.split()[-1])] = int(entry)
                        break
        except (OSError, ValueError):
            continue  # gone meanwhile, or another user's
    return seen


def alive(pid: int, started: Optional[int], pidns: Optional[int] = None,
          namespaces: Optional[Namespaces] = None) -> Optional[bool]:
    """True or False, or None when ``pid`` is another pid namespace's and it cannot be checked
    from here (with ``namespaces``, one whose processes this one sees is checked by our pid)."""
    if pidns is not None and pidns != pid_namespace():
        visible, ours = namespaces.find(pid, pidns) if namespaces is not None else (False, None)
        if not visible:
            return None
        if ours is None:
            return False  # its namespace is in view, and it is not there
        pid = ours
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    fields = _stat_fields(pid)
    if fields is None:
        return True  # no /proc here: kill(pid, 0) is all there is
    if fields[0] in (b"Z", b"X"):
        return False  # exited, not yet reaped by its parent: it serves nothing
    try:
        return started is None or int(fields[19]) == started
    except (ValueError, IndexError):
        return True


def _fresh(last: Optional[float], now: float) -> bool:
    return last is not None and now - last < FOREIGN_TIMEOUT


class _OpenRecord:
    __slots__ = ("fd", "pid", "size", "identity", "writing", "removed")

    def __init__(self, fd: int, size: int):
        st = os.fstat(fd)
        self.fd, self.pid, self.size = fd, os.getpid(), size
        self.identity = (st.st_dev, st.st_ino)  # the file this descriptor was opened on
        self.writing, self.removed = 0, False

    def owned(self) -> bool:
        """The descriptor is still the one opened on the record (not closed by the program,
        by a daemonizer's closerange, and its number given to another file)."""
        try:
            st = os.fstat(self.fd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.identity


class _RecordFiles:
    """A process's own record files, kept open and rewritten in place: one ``pwrite`` of the
    new document, padded with spaces (JSON allows them) to the longest it wrote, so the file
    never holds a shorter document's leftover tail. A rename into the directory every worker
    of the host writes into at the same moment cost 0.6 ms of CPU per write (ext4 allocates and
    starts writing a file renamed over another at once): 10 ms of the 2 cores per release at 16
    workers; a write in place costs 0.05 ms. A reader may catch a write half done: the CRC at
    the record's end tells it, and it reads again (``_read_json``). A file that is gone, or
    replaced, or inherited from the process that forked this one, is created again, complete,
    by a rename."""

    def __init__(self) -> None:
        self._open: Dict[Path, _OpenRecord] = {}

    def write(self, path: Path, data: bytes) -> None:
        entry = self._open.get(path)
        if entry is not None:
            entry.writing += 1  # (a signal handler's remove() meanwhile closes it after us)
            try:
                if self._rewrite(path, entry, data):
                    return
            finally:
                entry.writing -= 1
                if entry.removed and not entry.writing:
                    self._close(entry)
            self._forget(path, entry)
        write_atomically(path, data, durable=False)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return  # written; the next write makes it again
        try:
            self._open[path] = _OpenRecord(fd, len(data))
        except OSError:
            os.close(fd)

    @staticmethod
    def _rewrite(path: Path, entry: _OpenRecord, data: bytes) -> bool:
        if entry.pid != os.getpid() or entry.removed or not entry.owned():
            return False
        try:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) != entry.identity:
                return False  # deleted (a wiped cache dir, a pruner) or replaced
            padded = data.ljust(entry.size)
            if os.pwrite(entry.fd, padded, 0) != len(padded):
                return False
        except OSError:
            return False
        entry.size = len(padded)
        return True

    def _forget(self, path: Path, entry: _OpenRecord) -> None:
        if self._open.get(path) is entry:
            del self._open[path]
        entry.removed = True
        if not entry.writing:
            self._close(entry)

    @staticmethod
    def _close(entry: _OpenRecord) -> None:
        """Closed only while it is still the record's descriptor (in a forked child too: the
        child's copy is its own); a number the program has since given to another file is
        left alone."""
        if entry.fd >= 0 and entry.owned():
            try:
                os.close(entry.fd)
            except OSError:
                pass
        entry.fd = -1

    def remove(self, path: Path) -> None:
        entry = self._open.get(path)
        if entry is not None:
            self._forget(path, entry)

    def close(self) -> None:
        for path, entry in list(self._open.items()):
            self._forget(path, entry)

    def __del__(self) -> None:
        # A Registry dropped without close() (a Role that failed to arm, a forked child's copy
        # of the parent's): its descriptors go with it.
        for entry in list(getattr(self, "_open", {}).values()):
            if not entry.writing:
                self._close(entry)


class Registry:
    def __init__(self, cache_dir: Path, instance_key: str):
        self.dir = Path(cache_dir) / f"{instance_key}.procs"
        self._failed: Optional[str] = None
        self._files = _RecordFiles()

    def record_path(self, pid: int, n: int) -> Path:
        return self.dir / f"{pid}-{n}.json"

    # -- writing (the processes themselves) --------------------------------------------------------
    def write_process(self, record: ProcessRecord, n: int) -> None:
        self._write(self.record_path(record.pid, n), record.to_dict())

    def write_poller(self, health: PollerHealth) -> None:
        self._write(self.dir / POLLER_FILE, health.to_dict())

    def remove_process(self, pid: int, n: int) -> None:
        path = self.record_path(pid, n)
        _unlink(path)
        self._files.remove(path)

    def close(self) -> None:
        """Close the files this process keeps open for its writes (its role stopped)."""
        self._files.close()

    def _write(self, path: Path, document: dict) -> None:
        """Never raises: a registry that cannot be written costs visibility, not service."""
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._files.write(path, _framed(document))
        except OSError as exc:
            message = str(exc.strerror or exc)
            if message != self._failed:
                log.warning("hotconf: cannot write the process registry %s (%s): `hotconf "
                            "status` will not show this process", self.dir, message)
            self._failed = message
        else:
            self._failed = None

    # -- reading (status, metrics) ------------------------------------------------------------------
    def processes(self, prune: bool = True, now: Optional[float] = None) -> List[ProcessRecord]:
        """One record per live process (its poller role first, if it has two); the files of
        dead ones are removed (``prune``). PermissionError, saying what to do, if this user may
        not read it."""
        now = time.time() if now is None else now
        try:
            names = os.listdir(self.dir)
        except PermissionError as exc:
            raise PermissionError(exc.errno, f"cannot read {self.dir} ({exc.strerror}): run as "
                                             f"the app's user") from None
        except OSError:
            return []
        best: Dict[int, ProcessRecord] = {}
        namespaces = Namespaces()
        for name in names:
            path = self.dir / name
            if name.startswith(".") and name.endswith(".tmp"):
                if prune and _older(path, now, TEMP_TIMEOUT):
                    _unlink(path)
                continue
            stem, _, ext = name.rpartition(".")
            pid_text, _, n_text = stem.partition("-")
            if ext != "json" or not pid_text.isdigit() or not n_text.isdigit():
                continue
            raw, judged = _read_json(path)
            record = ProcessRecord.from_dict(raw)
            if record is None:
                if prune and raw is None and _abandoned(path, int(pid_text), now):
                    _unlink(path)  # a write cut short (SIGKILL, a full disk) by a dead process
                continue
            living = alive(record.pid, record.started, record.pidns, namespaces)
            if living is None:
                living = _fresh(max(record.last_check or 0.0, record.applied_at or 0.0,
                                    record.armed_at), now)
            if not living:
                if prune:
                    _unlink(path, judged)
                continue
            held = best.get(record.pid)
            if held is None or _rank(record) < _rank(held):
                best[record.pid] = record
        return list(best.values())

    def poller(self, now: Optional[float] = None) -> Optional[PollerHealth]:
        """The poller's health, if the process that wrote it is alive."""
        now = time.time() if now is None else now
        health = PollerHealth.from_dict(_read_json(self.dir / POLLER_FILE)[0])
        if health is None:
            return None
        living = alive(health.pid, health.started, health.pidns, Namespaces())
        if living is None:
            living = _fresh(max(health.last_poll or 0.0, health.last_success or 0.0,
                                health.since), now)
        return health if living else None


def _rank(record: ProcessRecord) -> Tuple[int, int]:
    return (0 if record.role == "poller" else 1, -(record.version or 0))


def read_host(settings: Settings, stale_after: Optional[float] = None,
              now: Optional[float] = None) -> HostStatus:
    """Everything ``hotconf status`` and the metrics show, read from the host's files: the
    cache index (the host's newest snapshot), the registry, the poller lock, the reload
    record. ``stale_after`` defaults to the settings'."""
    now = time.time() if now is None else now
    registry = Registry(settings.cache_dir, settings.instance_key)
    records = registry.processes(now=now)
    head = _host_head(settings)
    holder = PollerLock(settings.cache_dir / f"{settings.instance_key}.poller.lock").holder_pid()
    health = registry.poller(now)
    if holder is None:
        health = None
    elif health is None or health.pid != holder:
        health = PollerHealth(pid=holder)  # polling, but has not said more yet
    pending = ReloadRecord(settings.cache_dir / f"{settings.instance_key}.reload").peek()
    bound = settings.stale_after if stale_after is None else stale_after
    return host_status(records, health, head, now, bound,
                       PendingReload(pending.summary, pending.due_at) if pending else None)


def _host_head(settings: Settings) -> Optional[HostHead]:
    """The newest of the cache file's and its front copy's (the file is written behind it)."""
    head = LocalCache.for_settings(settings).head()
    shm = front_dir(settings.cache_dir, create=False)
    front = None if shm is None else FrontCache(shm, LocalCache.for_settings(settings)).head()
    return front if front is not None and (head is None or front.version > head.version) \
        else head


_READ_ATTEMPTS = 3  # a record read while its process rewrote it in place is read again
_CRC_FIELD = b',"crc32":"'


def _framed(document: dict) -> bytes:
    """The record, its last field the CRC-32 of the bytes before it: a read that caught a
    rewrite in place half done can be valid JSON (the digits of two versions, say), and must
    not pass for a record. Still the record's own JSON object, so that an earlier hotconf
    (which ignores a field it does not know) reads it as before."""
    head = json.dumps(document, separators=(",", ":")).encode("utf-8")[:-1]  # no closing brace
    return head + _CRC_FIELD + b'%08x"}' % zlib.crc32(head)


def _checked(raw: bytes) -> object:
    """The record a file holds; ValueError if the read caught it half rewritten. A record of
    an earlier hotconf (no CRC) is taken as it is: those were replaced whole."""
    end = raw.rstrip()
    at = end.rfind(_CRC_FIELD)
    if at < 0:
        return json.loads(raw)
    digits = end[at + len(_CRC_FIELD):at + len(_CRC_FIELD) + 8]
    if end[at + len(_CRC_FIELD) + 8:] != b'"}' or digits != b"%08x" % zlib.crc32(end[:at]):
        raise ValueError("a record caught while it was rewritten")
    return json.loads(end)


#: A file as a pruner judged it: its inode and when it was last written (a record is rewritten
#: in place: the inode alone would not tell a write made since).
Judged = Tuple[int, int]


def _read_json(path: Path) -> Tuple[object, Optional[Judged]]:
    """The document and the file as read (so a pruner removes only the file it judged)."""
    try:
        with open(path, "rb") as fh:
            for attempt in range(_READ_ATTEMPTS):
                try:
                    st = os.fstat(fh.fileno())
                    judged = (st.st_ino, st.st_mtime_ns)
                    return _checked(os.pread(fh.fileno(), st.st_size + 4096, 0)), judged
                except ValueError:
                    if attempt + 1 == _READ_ATTEMPTS:
                        raise
                    time.sleep(0.001)
    except (OSError, ValueError):
        pass
    return None, None


def _abandoned(path: Path, pid: int, now: float) -> bool:
    """An unreadable record no live process will mend: its pid (from its name) is gone and it
    has not been written for a minute, or it has not been written for ``FOREIGN_TIMEOUT``."""
    if _older(path, now, FOREIGN_TIMEOUT):
        return True
    return _older(path, now, TEMP_TIMEOUT) and alive(pid, None) is False


def _older(path: Path, now: float, seconds: float) -> bool:
    try:
        return now - os.stat(path).st_mtime > seconds
    except OSError:
        return False


def _unlink(path: Path, judged: Optional[Judged] = None) -> None:
    try:
        st = os.stat(path)
        if judged is not None and (st.st_ino, st.st_mtime_ns) != judged:
            return  # written since it was read: a live process's record
        os.unlink(path)
    except OSError:
        pass
