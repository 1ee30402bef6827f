"""Where the file store's front copy lives: a directory in memory (tmpfs), never on a disk.

Without a mule or the uWSGI cache, the cache file is the store every worker reads. On a disk,
the fsync before the rename that readers wait for stalls 50-800 ms now and then (a busy or
virtual disk, ext4's journal): each such stall was a release that late in every worker. The
front copy is written to ``/dev/shm`` first, which readers watch and read; the cache file is
written behind it, for restarts and for processes that cannot see this ``/dev/shm`` (another
container sharing the cache volume), which keep watching the file too.

``HOTCONF_SHM_DIR`` names another directory for it, or turns it off (``off``, ``0``, empty).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Optional, Set

log = logging.getLogger("hotconf")

ENV_SHM_DIR = "HOTCONF_SHM_DIR"
DEFAULT_SHM = Path("/dev/shm")
_OFF = ("", "0", "off", "no", "false", "none")
_refused: Set[Path] = set()  # the directories already warned about


def front_dir(cache_dir: Path) -> Optional[Path]:
    """The front's directory for ``cache_dir``, the same in every process of this user on the
    host (named by the cache dir's real path), or None: turned off, not Linux, or no private
    directory can be had there."""
    setting = os.environ.get(ENV_SHM_DIR)
    if setting is not None and setting.strip().lower() in _OFF:
        return None
    if setting is None and not sys.platform.startswith("linux"):
        return None
    base = Path(setting).expanduser() if setting else DEFAULT_SHM
    private = base / f"hotconf-{os.geteuid()}"
    try:
        private.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(private)
    except OSError as exc:
        # No /dev/shm (a minimal container, not Linux): quietly, unless it was asked for.
        _refuse(private, f"{exc.strerror or exc}", logging.WARNING if setting else logging.DEBUG)
        return None
    # /dev/shm is writable by everyone: a directory another user made there could be read or
    # planted in. Only our own, private one will do.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        _refuse(private, "it is not a directory private to this user", logging.WARNING)
        return None
    digest = hashlib.sha256(os.fsencode(os.path.realpath(cache_dir))).hexdigest()[:16]
    return private / digest


def _refuse(path: Path, why: str, level: int) -> None:
    if path in _refused:
        return
    _refused.add(path)
    log.log(level, "hotconf: not using %s for the shared snapshot (%s); the workers read the "
            "cache file, and a slow disk delays releases. Set %s to a private directory on "
            "tmpfs, or to 'off'", path, why, ENV_SHM_DIR)
