"""The local cache file: the last good snapshot, persisted atomically.

One JSON file per app and cluster, written as a temporary file in the same directory, fsynced
and renamed over the old one, so a reader (in this process or another) sees the old file or the
new one, never a mix. Files are 0600 in a 0700 directory; a symlink at the path is replaced, not
followed.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Optional, Tuple

from .errors import ProtocolError
from .options import Settings
from .snapshot import Snapshot

log = logging.getLogger("hotconf")

MAX_CACHE_BYTES = 64 * 1024 * 1024


class LocalCache:
    """``{cache_dir}/{app}+{cluster}+{digest}.json`` (see ``Settings.instance_key``)."""

    def __init__(self, cache_dir: Path, app_id: str, cluster: str, key: Optional[str] = None):
        self.dir = Path(cache_dir)
        self.app_id, self.cluster = app_id, cluster
        self.path = self.dir / f"{key or f'{app_id}+{cluster}'}.json"
        self._last_write_error: Optional[str] = None

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalCache:
        return cls(settings.cache_dir, settings.app_id, settings.cluster, settings.instance_key)

    def load(self, previous: Optional[Snapshot] = None) -> Optional[Snapshot]:
        """The cached snapshot, or None (missing, unreadable, corrupt, or another app's).
        Namespaces unchanged from ``previous`` are reused rather than parsed again."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("hotconf: cannot read the local cache %s (%s); ignoring it",
                        self.path, exc.strerror or exc)
            return None
        try:
            with os.fdopen(fd, "rb") as fh:
                raw = fh.read(MAX_CACHE_BYTES + 1)
            if len(raw) > MAX_CACHE_BYTES:
                raise ProtocolError("file is larger than any snapshot hotconf writes")
            snapshot = Snapshot.from_json(raw, source="cache", previous=previous)
        except (OSError, ProtocolError) as exc:
            log.warning("hotconf: the local cache %s is corrupt or unreadable (%s); ignoring it. "
                        "It is rewritten after the next successful load", self.path, exc)
            return None
        if (snapshot.app_id, snapshot.cluster) != (self.app_id, self.cluster):
            log.warning("hotconf: the local cache %s holds app %r cluster %r, not %r %r; "
                        "ignoring it", self.path, snapshot.app_id, snapshot.cluster,
                        self.app_id, self.cluster)
            return None
        return snapshot

    def token(self) -> Optional[Tuple[int, int, int]]:
        """Changes whenever the file is replaced or rewritten: a stat, no read."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def save(self, snapshot: Snapshot) -> bool:
        """Write atomically; on failure log once per distinct error and carry on."""
        try:
            write_atomically(self.path, snapshot.to_json())
        except OSError as exc:
            message = f"{exc.strerror or exc}"
            if message != self._last_write_error:
                log.warning("hotconf: cannot write the local cache %s (%s); serving from memory. "
                            "Set cache_dir= or APOLLO_CACHE_DIR to a writable directory",
                            self.path, message)
            self._last_write_error = message
            return False
        if self._last_write_error is not None:
            log.info("hotconf: local cache %s is writable again", self.path)
            self._last_write_error = None
        return True


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temporary file in the same 0700 directory (0600),
    fsynced and renamed over it, so a reader sees the old file or the new one. Raises OSError."""
    tmp_name = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(path.parent)
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
