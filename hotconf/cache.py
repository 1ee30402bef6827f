"""The local cache: the last good snapshot, persisted atomically.

One small index file per app and cluster (``{key}.json``: versions, release keys, a digest per
namespace) and one part per namespace in ``{key}.parts/``, named by its digest and never
modified. A release writes the parts it changed, then replaces the index, so a reader sees the
old index or the new one, never a mix, and decodes only the namespaces that changed (a small
release's changes travel in the index: see ``deltas.py``). Parts no index names any more are
removed (the previous index's are kept for readers still on it). Every file is written as a
temporary file in the same directory, fsynced and renamed; files are 0600 in 0700
directories; a symlink at a path is replaced, not followed. The caches earlier hotconf versions
kept for the same config (under another key: see ``options.CACHE_GENERATION``) are read while
this one has nothing.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import tempfile
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Set, Tuple

from .errors import MissingPartError, ProtocolError
from .options import Settings
from .snapshot import Snapshot
from .status import HostHead

log = logging.getLogger("hotconf")

MAX_CACHE_BYTES = 64 * 1024 * 1024  # per file
PART_SUFFIX = ".json"
_READ_ATTEMPTS = 3  # a reader whose index went stale under it reads the new one


class LocalCache:
    """``{cache_dir}/{app}+{cluster}+{digest}.json`` (see ``Settings.instance_key``)."""

    def __init__(self, cache_dir: Path, app_id: str, cluster: str, key: Optional[str] = None,
                 earlier_keys: Sequence[str] = ()):
        """``earlier_keys`` name the caches earlier hotconf versions kept for the same config
        (an index and parts, or 0.1's one document): read, never written, while this cache has
        nothing, so a warm cache survives the upgrade."""
        self.dir = Path(cache_dir)
        self.app_id, self.cluster = app_id, cluster
        self.path = self.dir / f"{key or f'{app_id}+{cluster}'}.json"
        self.parts_dir = self.path.with_suffix(".parts")
        self.earlier_paths = [self.dir / f"{k}.json" for k in earlier_keys]
        self._last_write_error: Optional[str] = None
        self._last_read_problem: Optional[str] = None
        self._verified = False  # the parts on disk were compared with ours once (first save)
        #: Read only files of this user (a copy in a directory others could once write to)
        self.own_files_only = False
        self.what = "local cache"  # (for the messages)

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalCache:
        return cls(settings.cache_dir, settings.app_id, settings.cluster, settings.instance_key,
                   settings.earlier_instance_keys)

    def load(self, previous: Optional[Snapshot] = None) -> Optional[Snapshot]:
        """The cached snapshot, or None (missing, unreadable, corrupt, or another app's).
        Only the parts of namespaces that differ from ``previous`` are read and parsed."""
        for _ in range(_READ_ATTEMPTS):
            raw, read_part = self._read(self.path, "local cache"), self._read_part
            for earlier in self.earlier_paths:
                if raw is not None:
                    break
                raw = self._read(earlier, "local cache of an earlier hotconf")
                read_part = partial(self._read_part_in, earlier.with_suffix(".parts"))
            if raw is None:
                return None
            try:
                snapshot = Snapshot.decode(raw, read_part, source="cache", previous=previous)
            except MissingPartError as exc:
                missing = str(exc)
                continue  # replaced by a newer release while we read: read the new index
            except ProtocolError as exc:
                self._problem(f"the local cache {self.path} is corrupt or unreadable ({exc}); "
                              f"ignoring it. It is rewritten after the next successful load")
                return None
            if (snapshot.app_id, snapshot.cluster) != (self.app_id, self.cluster):
                self._problem(f"the local cache {self.path} holds app {snapshot.app_id!r} "
                              f"cluster {snapshot.cluster!r}, not {self.app_id!r} "
                              f"{self.cluster!r}; ignoring it")
                return None
            self._last_read_problem = None
            return snapshot
        self._problem(f"the local cache {self.path} is incomplete ({missing}); ignoring it. The "
                      f"poller writes it again")
        return None

    def _problem(self, message: str) -> None:
        """Said once while it lasts (a process behind an unreadable cache retries every few
        seconds), then at debug level."""
        level = logging.DEBUG if message == self._last_read_problem else logging.WARNING
        self._last_read_problem = message
        log.log(level, "hotconf: %s", message)

    def _read(self, path: Path, what: str) -> Optional[bytes]:
        try:
            # O_NONBLOCK: a FIFO planted at the path must not hang the reader (no effect on a
            # regular file's reads).
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
                         | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._problem(f"the {what} {path} is corrupt or unreadable "
                          f"({exc.strerror or exc}); ignoring it")
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._problem(f"the {what} {path} is corrupt or unreadable (not a regular "
                              f"file); ignoring it")
                return None
            if self.own_files_only and st.st_uid != os.geteuid():
                self._problem(f"the {what} {path} belongs to another user; ignoring it")
                return None
            raw = _read_bounded(fd, MAX_CACHE_BYTES)
        except OSError as exc:
            self._problem(f"the {what} {path} is corrupt or unreadable "
                          f"({exc.strerror or exc}); ignoring it")
            return None
        finally:
            os.close(fd)
        if raw is None:
            self._problem(f"the {what} {path} is larger than {MAX_CACHE_BYTES} bytes; "
                          f"ignoring it")
        return raw

    def _read_part(self, namespace: str, digest: str) -> Optional[bytes]:
        return self._read_part_in(self.parts_dir, namespace, digest)

    def _read_part_in(self, parts_dir: Path, namespace: str, digest: str) -> Optional[bytes]:
        if not digest.isalnum():  # a digest is hex: never a path
            return None
        return self._read(parts_dir / (digest + PART_SUFFIX), "cached namespace")

    def version(self) -> Optional[int]:
        """The version of the cached snapshot from its index alone (no part is read)."""
        return self.summary()[0]

    def head(self) -> Optional[HostHead]:
        """The version, publication time and release keys of the cached snapshot, from its
        index alone (what ``hotconf status`` compares every process with)."""
        raw = self._read(self.path, "local cache")
        try:
            document = json.loads(raw) if raw is not None else None
            if not isinstance(document, dict):
                return None
            version, created = document.get("version"), document.get("created_at")
            namespaces = document.get("namespaces")
            if (not isinstance(version, int) or not isinstance(created, (int, float))
                    or not isinstance(namespaces, dict)):
                return None
            releases = {str(name): item.get("release_key")
                        for name, item in namespaces.items() if isinstance(item, dict)}
        except (ValueError, RecursionError, AttributeError):
            return None
        return HostHead(version, float(created), releases)

    def lost_parts_of(self, snapshot: Snapshot,
                      on_disk: Optional[Tuple[Optional[int], Set[str]]] = None) -> bool:
        """The index on disk is ``snapshot``'s, but some of its parts are gone. ``on_disk``:
        the index's ``summary()``, if the caller has just read it."""
        version, digests = on_disk if on_disk is not None else self.summary()
        return (version == snapshot.version and digests == set(snapshot.parts())
                and not self.holds(snapshot))

    def holds(self, snapshot: Snapshot) -> bool:
        """The index and every part of ``snapshot`` are on disk (stats, no reads): what the
        poller checks to put back a deleted cache dir, or parts a tmp cleaner took."""
        if self.token() is None:
            return False
        return all(_part_ok(self.parts_dir / (digest + PART_SUFFIX), data)
                   for digest, data in snapshot.parts().items())

    def token(self) -> Optional[Tuple[int, int, int]]:
        """Changes whenever the file is replaced or rewritten: a stat, no read."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def save(self, snapshot: Snapshot, visible: Optional[Callable[[], None]] = None,
             on_disk: Optional[Tuple[Optional[int], Set[str]]] = None) -> bool:
        """Write the parts it lacks, then the index; on failure log once per distinct error and
        carry on (the old index and its parts stay intact). ``visible`` is called once the new
        index is in place, before the directory's fsync and the old parts' removal: what
        waits for readers to see it (this process's own delivery) need not wait for a disk
        that stalls (0.1-0.3 s seen here). ``on_disk``: the index's ``summary()``, read by the
        caller under the writers' lock (the file store's compare-and-swap): not read again."""
        try:
            self._save(snapshot, visible, on_disk)
        except OSError as exc:
            self.write_failed(exc)
            return False
        if self._last_write_error is not None:
            log.info("hotconf: %s %s is writable again", self.what, self.path)
            self._last_write_error = None
        return True

    def write_failed(self, exc: OSError) -> None:
        """Logged once per distinct error while it lasts (a refused write is retried)."""
        message = f"{exc.strerror or exc}"
        if message != self._last_write_error:
            log.warning("hotconf: cannot write the local cache %s (%s); serving from memory. "
                        "Set cache_dir= or APOLLO_CACHE_DIR to a writable directory",
                        self.path, message)
        self._last_write_error = message

    def _save(self, snapshot: Snapshot, visible: Optional[Callable[[], None]] = None,
              on_disk: Optional[Tuple[Optional[int], Set[str]]] = None) -> None:
        parts = snapshot.parts()
        self.prepare_write()
        _replace_symlink_dir(self.parts_dir)
        self.parts_dir.mkdir(mode=0o700, exist_ok=True)
        present = set(os.listdir(self.parts_dir))
        wrote = False
        for digest, data in parts.items():
            path = self.parts_dir / (digest + PART_SUFFIX)
            # A part is named by its content, so one that is there is ours: checked by its
            # size and type, and once per process by its bytes (a part changed by hand would
            # otherwise fail every reader until the namespace's next release).
            if digest + PART_SUFFIX not in present or \
                    not _part_ok(path, data, thorough=not self._verified):
                write_atomically(path, data, sync_dir=False)
                wrote = True
        self._verified = True
        if wrote:
            _fsync_dir(self.parts_dir)
        named = (on_disk if on_disk is not None else self.summary())[1]
        keep = {d + PART_SUFFIX for d in set(parts) | named}
        write_atomically(self.path, snapshot.index_json(), sync_dir=False)
        if visible is not None:
            visible()
        _fsync_dir(self.dir)
        _remove_unlisted(self.parts_dir, present - keep)

    def prepare_write(self) -> None:
        """Before anything is written here: the directory, made if missing. Raises OSError."""
        make_private_dirs(self.dir)

    def summary(self) -> Tuple[Optional[int], Set[str]]:
        """The version and the part digests the index on disk names (one read, no part)."""
        raw = self._read(self.path, "local cache")
        try:
            document = json.loads(raw) if raw is not None else {}
            version = document.get("version")
            digests = {item["digest"] for item in document.get("namespaces", {}).values()
                       if isinstance(item.get("digest"), str)}
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return None, set()
        return (version if isinstance(version, int) else None), digests


def _read_bounded(fd: int, limit: int) -> Optional[bytes]:
    """The whole file, or None past ``limit`` bytes. Sized by fstat and read with os.read: a
    buffered ``read(limit + 1)`` allocates the limit (64 MB) on every read of a 2 KB index."""
    chunks = [os.read(fd, min(os.fstat(fd).st_size, limit) + 1)]
    total = len(chunks[0])
    while chunks[-1] and total <= limit:  # a file that grew since the fstat
        chunks.append(os.read(fd, 1 << 16))
        total += len(chunks[-1])
    if total > limit:
        return None
    return chunks[0] if len(chunks) == 2 else b"".join(chunks)  # the usual read: no copy


def _part_ok(path: Path, data: bytes, thorough: bool = False) -> bool:
    """A regular file (not a planted link) of the part's size; with ``thorough``, its bytes."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
        return False
    if not thorough:
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(len(data) + 1) == data
    except OSError:
        return False


def _replace_symlink_dir(path: Path) -> None:
    """A symlink planted where the parts directory goes is removed, not followed."""
    if os.path.islink(path):
        os.unlink(path)


def _remove_unlisted(directory: Path, names: Iterable[str]) -> None:
    for name in names:
        if name.endswith(PART_SUFFIX) and not name.startswith("."):  # never a writer's temp
            try:
                os.unlink(directory / name)
            except OSError:
                pass


def write_atomically(path: Path, data: bytes, sync_dir: bool = True,
                     durable: bool = True) -> None:
    """Replace ``path`` with ``data``: a temporary file in the same 0700 directory (0600),
    fsynced (unless not ``durable``) and renamed over it, so a reader sees the old file or the
    new one. Raises OSError."""
    tmp_name = None
    try:
        make_private_dirs(path.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        if sync_dir and durable:
            _fsync_dir(path.parent)
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def make_private_dirs(path: Path) -> None:
    """``path`` and every missing directory above it, each 0700 (``mkdir(parents=True)`` makes
    the ones above with the umask's mode: a private directory deleted from /dev/shm would come
    back readable by others)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        _may_create_in(directory.parent)
        directory.mkdir(mode=0o700, exist_ok=True)


def _may_create_in(parent: Path) -> None:
    """Raises PermissionError for a directory anyone may write to without the sticky bit
    (/tmp and /dev/shm have it; one another user made, 0777, has not): what is made there
    could be renamed away and replaced by anyone."""
    st = os.stat(parent)
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise PermissionError(errno.EPERM, f"{parent} is writable by anyone")


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
