"""Where the file store's front copy lives: a directory in memory (tmpfs), never on a disk.

Without a mule or the uWSGI cache, the cache file is the store every worker reads. On a disk,
the fsync before the rename that readers wait for stalls 50-800 ms now and then (a busy or
virtual disk, ext4's journal): each such stall was a release that late in every worker. The
front copy is written to ``/dev/shm`` first, which readers watch and read; the cache file is
written behind it, for restarts and for processes that cannot see this ``/dev/shm`` (another
container sharing the cache volume), which keep watching the file too.

``/dev/shm`` is writable by every user, and its contents can vanish (systemd's RemoveIPC at
logout, a tmp cleaner): the copy sits in ``hotconf-{uid}``, 0700, checked before every write
(a directory someone else made there is never written to) and made again 0700 if it went;
readers read only this user's files there. The copy of a cache dir is named by that dir's
path and the mount namespace, so two containers that share ``/dev/shm`` (``--ipc=host``) never
share a copy, even with a cache volume each at the same path (when they share the volume, the
one that does not poll follows the cache file). Copies whose cache dir is gone are removed
after a while, by a poller of the same mount namespace.

``HOTCONF_SHM_DIR`` names another directory for it (absolute), or turns it off (``off``).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Optional, Set, Tuple

from ..cache import LocalCache, write_atomically

log = logging.getLogger("hotconf")

ENV_SHM_DIR = "HOTCONF_SHM_DIR"
DEFAULT_SHM = Path("/dev/shm")
ORIGIN_FILE = "origin"  # in each copy's directory: the cache dir it is a copy of
STALE_AFTER = 600.0  # a copy whose cache dir is gone is removed once untouched this long
_OFF = ("", "0", "off", "no", "false", "none")
_refused: Set[Tuple[Path, str]] = set()  # what was already said


def front_dir(cache_dir: Path, create: bool = True) -> Optional[Path]:
    """The front's directory for ``cache_dir``, the same in every process of this user on the
    host in the same mount namespace, or None: turned off, not Linux, or no private directory
    can be had there. ``create``: make the private directory if missing."""
    setting = os.environ.get(ENV_SHM_DIR)
    if setting is not None and setting.strip().lower() in _OFF:
        return None
    if setting is None and not sys.platform.startswith("linux"):
        return None
    base = Path(setting).expanduser() if setting else DEFAULT_SHM
    if not base.is_absolute():  # each process would find its own, from its working directory
        _refuse(base, "it is not an absolute path", logging.WARNING)
        return None
    private = base / f"hotconf-{os.geteuid()}"
    try:
        if create:
            private.mkdir(mode=0o700, exist_ok=True)
        private_enough(private)
    except PermissionError as exc:
        _refuse(private, f"{exc.strerror or exc}", logging.WARNING)
        return None
    except OSError as exc:
        # No /dev/shm (a minimal container, not Linux): quietly, unless it was asked for.
        _refuse(private, f"{exc.strerror or exc}", logging.WARNING if setting else logging.DEBUG)
        return None
    return private / copy_name(cache_dir)


def copy_name(cache_dir: Path, namespace: Optional[str] = None) -> str:
    """The name of ``cache_dir``'s copy: its real path, in this mount namespace."""
    origin = origin_of(cache_dir, namespace)
    return hashlib.sha256(origin.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def origin_of(cache_dir: Path, namespace: Optional[str] = None) -> str:
    """What a copy records of its cache dir: the mount namespace, then the real path."""
    return f"{namespace if namespace is not None else mount_namespace()}\n" \
           f"{os.path.realpath(cache_dir)}"


def mount_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/mnt")  # "mnt:[4026531841]"
    except OSError:
        return ""


def private_enough(private: Path) -> None:
    """Raises PermissionError unless ``private`` is a directory of this user's, 0700 or less,
    and not a link; OSError if it is not there."""
    st = os.lstat(private)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise PermissionError(errno.EPERM, "it is not a directory private to this user")


class FrontCache(LocalCache):
    """The copy in memory: a local cache that checks its private directory before each write
    (and makes it again, 0700, if it went), reads only this user's files, and says what a
    failed write means for the workers."""

    def __init__(self, directory: Path, origin: LocalCache):
        super().__init__(directory, origin.app_id, origin.cluster, origin.path.stem)
        self.private = directory.parent
        self.origin = origin
        self.own_files_only = True
        self.what = "shared copy in memory"
        self._pruned = False

    def _read(self, path: Path, what: str) -> Optional[bytes]:
        try:  # (a copy in a directory another user made after ours went is never read)
            private_enough(self.private)
        except OSError:
            return None
        return super()._read(path, what)

    def prepare_write(self) -> None:
        try:
            private_enough(self.private)
        except FileNotFoundError:
            self.private.mkdir(mode=0o700)  # removed (RemoveIPC, a cleaner): ours again
            private_enough(self.private)
        super().prepare_write()
        origin = self.dir / ORIGIN_FILE
        if not origin.exists():
            write_atomically(origin, origin_of(self.origin.dir).encode(
                "utf-8", "surrogateescape"), durable=False)
        if not self._pruned:
            self._pruned = True
            prune(self.private, keep=self.dir.name)

    def write_failed(self, exc: OSError) -> None:
        message = f"{exc.strerror or exc}"
        if message != self._last_write_error:
            remedy = "Free space there" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else \
                "Remove it if it is not this user's"
            log.warning("hotconf: cannot write the shared copy in memory %s (%s); the workers "
                        "follow the cache file %s meanwhile (slower on a busy disk). %s, or set "
                        "%s to another tmpfs directory", self.dir, message, self.origin.path,
                        remedy, ENV_SHM_DIR)
        self._last_write_error = message


def prune(private: Path, keep: str, now: Optional[float] = None) -> None:
    """Remove the copies of this mount namespace whose cache dir is gone, once they were left
    untouched for ``STALE_AFTER``: a test suite's temporary cache dirs would otherwise leave a
    copy each in memory until the next reboot. (Another namespace's cache dirs cannot be seen
    from here: its copies are left alone.)"""
    now = time.time() if now is None else now
    here = mount_namespace()
    try:
        names = os.listdir(private)
    except OSError:
        return
    for name in names:
        copy = private / name
        if name == keep or name.startswith("."):
            continue
        try:
            if now - os.lstat(copy).st_mtime < STALE_AFTER:
                continue
            namespace, _, path = (copy / ORIGIN_FILE).read_bytes().decode(
                "utf-8", "surrogateescape").partition("\n")
        except (OSError, ValueError):
            continue
        if namespace != here or os.path.isdir(path) or copy_name(Path(path), namespace) != name:
            continue
        shutil.rmtree(copy, ignore_errors=True)


def _refuse(path: Path, why: str, level: int) -> None:
    if (path, why) in _refused:
        return
    _refused.add((path, why))
    log.log(level, "hotconf: not using %s for the shared snapshot (%s); the workers read the "
            "cache file, and a slow disk delays releases. Set %s to a private directory on "
            "tmpfs, or to 'off'", path, why, ENV_SHM_DIR)
