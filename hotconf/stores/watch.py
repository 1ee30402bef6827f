"""Watching files for replacement: the push of the file store (its copy in /dev/shm and the
cache file, in one inotify instance), and the poller's watch for deletions (``LossWatch``).

On Linux the directory is watched with inotify directly, for the three events that can mean new
content (a write closed, a file renamed in, a file created), read by a thread that waits in
``select.poll`` with no timeout: readers' own opens and reads of the cache wake nobody, and an
event is handled the moment it arrives. watchdog (7.x) is used elsewhere (macOS, BSD): on Linux
it would watch every event of the directory (each standby's open of the lock file woke every
reader) and holds a rename's first half for up to 0.5 s to pair it with the second, which
showed as 0.5 s propagation outliers. Under gevent's monkey-patching the thread is a greenlet
waiting in the patched ``select.poll``, which never blocks the hub.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import queue
import select
import struct
import sys
import threading
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from ..cache import make_private_dirs

log = logging.getLogger("hotconf")

# Only events that can mean new content. Readers' own opens and reads of the file raise
# "opened" / "closed_no_write" events too: reacting to those makes every reader re-read the
# file because another one did, forever.
_CONTENT_EVENTS = frozenset({"created", "modified", "moved", "closed"})


class _Handler(FileSystemEventHandler):
    def __init__(self, path: str, callback: Callable[[], None]):
        self.path, self.callback = path, callback

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CONTENT_EVENTS:
            return
        for raw in (getattr(event, "dest_path", None), event.src_path):
            if raw and os.fsdecode(raw) == self.path:
                try:
                    self.callback()
                except Exception:  # noqa: BLE001 - the observer thread must survive
                    log.exception("hotconf: reloading %s failed", self.path)
                return


_IN_MODIFY = 0x2
_IN_CLOSE_WRITE, _IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE = 0x8, 0x40, 0x80, 0x100
_IN_DELETE, _IN_DELETE_SELF, _IN_MOVE_SELF = 0x200, 0x400, 0x800
CONTENT = _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
LOSS = _IN_DELETE | _IN_MOVED_FROM | _IN_DELETE_SELF | _IN_MOVE_SELF
_SELF = _IN_DELETE_SELF | _IN_MOVE_SELF
_EVENT = struct.Struct("iIII")


#: The files of a watched directory that count: names, or names with their own event mask
#: (else the watch's), or None for any file.
Names = Optional[Union[Set[str], Dict[str, int]]]


class _Inotify:
    """Directories watched with inotify for ``mask`` events on the named files in each (None:
    any file; the directory's own deletion always counts), read by a thread (a greenlet under
    gevent) that waits in ``select.poll``; ``stop`` wakes it through a pipe."""

    def __init__(self, watched: Mapping[Path, Names], mask: int, callback: Callable[[], None]):
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        self._names: Dict[int, Optional[Dict[bytes, int]]] = {}
        for directory, names in watched.items():
            masks = None if names is None else {
                os.fsencode(n): names[n] if isinstance(names, dict) else mask for n in names}
            wanted = mask
            for extra in (masks or {}).values():
                wanted |= extra
            wd = libc.inotify_add_watch(fd, os.fsencode(directory), wanted)
            if wd < 0:
                code = ctypes.get_errno()
                os.close(fd)
                raise OSError(code, f"inotify_add_watch {directory}: {os.strerror(code)}")
            self._names[wd] = masks
        self._fd = fd
        self._wake_r, self._wake_w = os.pipe()
        self._callback, self.path = callback, next(iter(watched))
        threading.Thread(target=self._run, name="hotconf-inotify", daemon=True).start()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while True:
                ready = {fd for fd, _ in poller.poll()}
                if self._wake_r in ready:
                    return
                try:
                    data = os.read(self._fd, 65536)
                except OSError as exc:
                    if exc.errno == errno.EAGAIN:
                        continue
                    raise
                if self._matches(data):
                    try:
                        self._callback()
                    except Exception:  # noqa: BLE001 - the watcher must survive
                        log.exception("hotconf: handling a change in %s failed", self.path)
        finally:
            for fd in (self._fd, self._wake_r):
                os.close(fd)

    def _matches(self, data: bytes) -> bool:
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size: offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            if wd not in self._names:
                continue
            wanted = self._names[wd]
            if mask & _SELF:
                return True
            if wanted is None:
                # Any file of the directory, but a writer's temporary file ("." first): one
                # renamed into place or removed after a failed write is no loss.
                if name and not name.startswith(b"."):
                    return True
            elif mask & wanted.get(name, 0):
                return True
        return False

    def stop(self) -> None:
        os.write(self._wake_w, b"x")
        os.close(self._wake_w)


def _use_inotify() -> bool:
    """Linux, or gevent.monkey replaced ``queue.Queue`` (watchdog's event queue subclasses it)."""
    return sys.platform.startswith("linux") or \
        getattr(queue.Queue, "__module__", "queue") != "queue"


class FileWatch:
    """Calls ``callback()`` whenever one of ``paths`` is created, written or renamed over: one
    inotify instance and one thread for all of them (a reader of the file store's front copy
    watches it and the cache file)."""

    def __init__(self, *paths: Path):
        self.paths = list(paths)
        self.path = self.paths[0]
        self._observer: Optional[Union[BaseObserver, _Inotify]] = None
        self._callback: Optional[Callable[[], None]] = None
        self._watched: List[Optional[Tuple[int, int]]] = []  # the directories' (device, inode)
        self._skipped: List[Path] = []  # paths whose directory could not be had

    def start(self, callback: Callable[[], None]) -> None:
        if self._observer is not None:
            return
        self._callback = callback
        names: Dict[Path, Set[str]] = {}
        self._skipped = []
        for path in self.paths:
            try:
                make_private_dirs(path.parent)
            except OSError as exc:
                # Watch the others (the cache file when the copy in /dev/shm cannot be had);
                # renew() tries this one again.
                log.debug("hotconf: cannot watch %s (%s)", path, exc)
                self._skipped.append(path)
                continue
            names.setdefault(path.parent, set()).add(path.name)
        self._watched = self._identities()
        if not names:
            return
        if _use_inotify():
            self._observer = _Inotify(dict(names), CONTENT, callback)
            return
        observer = Observer()
        for path in self.paths:
            if path.parent in names:
                observer.schedule(_Handler(str(path), callback), str(path.parent),
                                  recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def _identities(self) -> List[Optional[Tuple[int, int]]]:
        return [_identity(directory) for directory in dict.fromkeys(p.parent for p in self.paths)]

    def renew(self) -> None:
        """Watch again if a directory was deleted and made again (a watch follows the
        directory it was set on, not its name), or one that could not be watched now can.
        Then report, in case a change was missed."""
        callback = self._callback
        if callback is None or (self._identities() == self._watched
                                and not self._can_watch_more()):
            return
        self.close()
        self.start(callback)
        callback()

    def _can_watch_more(self) -> bool:
        for path in self._skipped:
            try:
                make_private_dirs(path.parent)
                return True
            except OSError:
                pass
        return False

    def close(self) -> None:
        observer, self._observer = self._observer, None
        self._callback = None
        if isinstance(observer, _Inotify):
            observer.stop()
        elif observer is not None:
            observer.stop()
            observer.join(2)


class LossWatch:
    """Calls ``callback()`` when one of ``files`` is deleted or renamed away, when any file of
    ``dirs`` is, when a watched directory itself goes, or when one of ``writes`` is written:
    what the poller's guard waits for (a loss to repair, a mule's claim), instead of checking
    on a timer. ``available`` is False where inotify is not (the guard then checks on its
    timer)."""

    def __init__(self, files: Iterable[Path], dirs: Iterable[Path] = (),
                 writes: Iterable[Path] = ()):
        self.files, self.dirs, self.writes = list(files), list(dirs), list(writes)
        self._inotify: Optional[_Inotify] = None
        self._callback: Optional[Callable[[], None]] = None
        self._watched: Dict[Path, Optional[Tuple[int, int]]] = {}

    @property
    def available(self) -> bool:
        return self._inotify is not None

    def start(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        if not sys.platform.startswith("linux"):
            return
        watched: Dict[Path, Optional[Dict[str, int]]] = {}
        for files, mask in ((self.files, LOSS), (self.writes, _IN_MODIFY)):
            for file in files:
                names = watched.setdefault(file.parent, {})
                if names is not None:
                    names[file.name] = names.get(file.name, 0) | mask
        for directory in self.dirs:
            watched[directory] = None
        try:
            for directory in watched:
                make_private_dirs(directory)
            self._watched = {d: _identity(d) for d in watched}
            self._inotify = _Inotify(watched, LOSS, callback)
        except OSError as exc:
            log.debug("hotconf: cannot watch %s for deletions (%s)", list(watched), exc)
            self._inotify = None

    def renew(self) -> None:
        """Watch again when a watched directory was replaced (deleted and made again)."""
        callback = self._callback
        if callback is None or all(_identity(d) == i for d, i in self._watched.items()):
            return
        self.close()
        self.start(callback)

    def close(self) -> None:
        inotify, self._inotify = self._inotify, None
        if inotify is not None:
            inotify.stop()


def _identity(path: Path) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
