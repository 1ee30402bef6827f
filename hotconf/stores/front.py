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
path and identity (device, inode), so two containers that share ``/dev/shm`` but not the
cache volume never share a copy. Copies whose cache dir is gone are removed after a while.

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
from typing import Optional, Set

from ..cache import LocalCache, make_private_dirs, write_atomically

log = logging.getLogger("hotconf")

ENV_SHM_DIR = "HOTCONF_SHM_DIR"
DEFAULT_SHM = Path("/dev/shm")
ORIGIN_FILE = "origin"  # in each copy's directory: the cache dir it is a copy of
STALE_AFTER = 600.0  # a copy whose cache dir is gone is removed once untouched this long
_OFF = ("", "0", "off", "no", "false", "none")
_refused: Set[Path] = set()  # the directories already warned about


def front_dir(cache_dir: Path, create: bool = True) -> Optional[Path]:
    """The front's directory for ``cache_dir``, the same in every process of this user on the
    host that sees the same cache dir, or None: turned off, not Linux, or no private directory
    can be had there. ``create``: make the private directory and the cache dir if missing."""
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
            make_private_dirs(cache_dir)
        private_enough(private)
        name = copy_name(cache_dir)
    except PermissionError as exc:
        _refuse(private, f"{exc.strerror or exc}", logging.WARNING)
        return None
    except OSError as exc:
        # No /dev/shm (a minimal container, not Linux): quietly, unless it was asked for.
        _refuse(private, f"{exc.strerror or exc}", logging.WARNING if setting else logging.DEBUG)
        return None
    return private / name


def copy_name(cache_dir: Path) -> str:
    """The name of ``cache_dir``'s copy: its real path and its identity. Raises OSError."""
    real = os.path.realpath(cache_dir)
    st = os.stat(real)
    return hashlib.sha256(f"{real}\0{st.st_dev}\0{st.st_ino}".encode(
        "utf-8", "surrogateescape")).hexdigest()[:16]


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
        self._pruned = False

    def prepare_write(self) -> None:
        try:
            private_enough(self.private)
        except FileNotFoundError:
            self.private.mkdir(mode=0o700)  # removed (RemoveIPC, a cleaner): ours again
            private_enough(self.private)
        super().prepare_write()
        origin = self.dir / ORIGIN_FILE
        if not origin.exists():
            write_atomically(origin, os.fsencode(os.path.realpath(self.origin.dir)),
                             durable=False)
        if not self._pruned:
            self._pruned = True
            prune(self.private, keep=self.dir.name)

    def write_failed(self, exc: OSError) -> None:
        message = f"{exc.strerror or exc}"
        if message != self._last_write_error:
            log.warning("hotconf: cannot write the shared copy in memory %s (%s); the workers "
                        "follow the cache file %s meanwhile (slower on a busy disk). Free "
                        "space there, or set %s to another tmpfs directory", self.dir, message,
                        self.origin.path, ENV_SHM_DIR)
        self._last_write_error = message


def prune(private: Path, keep: str, now: Optional[float] = None) -> None:
    """Remove the copies whose cache dir is gone (or is another directory now), once they
    were left untouched for ``STALE_AFTER``: a test suite's temporary cache dirs would
    otherwise leave a copy each in memory until the next reboot."""
    now = time.time() if now is None else now
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
            origin = Path(os.fsdecode((copy / ORIGIN_FILE).read_bytes()))
            if copy_name(origin) == name:
                continue  # its cache dir is still there: still someone's
        except FileNotFoundError:
            pass  # the cache dir (or the origin file) is gone
        except OSError:
            continue
        shutil.rmtree(copy, ignore_errors=True)


def _refuse(path: Path, why: str, level: int) -> None:
    if path in _refused:
        return
    _refused.add(path)
    log.log(level, "hotconf: not using %s for the shared snapshot (%s); the workers read the "
            "cache file, and a slow disk delays releases. Set %s to a private directory on "
            "tmpfs, or to 'off'", path, why, ENV_SHM_DIR)
