"""The store interface shared by the memory, file, uWSGI-cache and layered stores.

The poller ``publish``es; readers ask for the ``latest`` snapshot when told something changed
(``watch``), and may compare ``token()`` (a cheap version marker) to find out themselves.
Versions only move forward: a store refuses a snapshot that is not newer than what it holds.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from ..snapshot import Snapshot

log = logging.getLogger("hotconf")

Subscriber = Callable[[Snapshot], None]


class Store:
    name = "base"
    #: Other processes on the host can read what is published here (so they need one poller)
    shared = True

    def __init__(self) -> None:
        self._subscribers: List[Subscriber] = []
        self._sub_lock = threading.Lock()
        #: A snapshot published here that the disk refused (full, read-only): the publisher
        #: publishes it again later, until the host's shared copy holds it.
        self.unwritten: Optional[Snapshot] = None

    def subscribe(self, callback: Subscriber) -> None:
        """In-process subscribers: called after a publish made in this process."""
        with self._sub_lock:
            self._subscribers.append(callback)

    def _notify_local(self, snapshot: Snapshot) -> None:
        with self._sub_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(snapshot)
            except Exception:  # noqa: BLE001 - one bad subscriber must not stop the publish
                log.exception("hotconf: a snapshot subscriber failed")

    def publish(self, snapshot: Snapshot) -> bool:
        """Make ``snapshot`` the host's newest; False if the store holds one as new or newer
        (or could not take it). May raise ``StoreError`` (e.g. too large for the store)."""
        raise NotImplementedError

    def latest(self, previous: Optional[Snapshot] = None) -> Optional[Snapshot]:
        """The newest snapshot; namespaces unchanged from ``previous`` may be reused."""
        raise NotImplementedError

    def token(self) -> Any:
        """Changes whenever a newer snapshot was published; cheap to compute."""
        raise NotImplementedError

    def version(self) -> Optional[int]:
        """The version of the newest snapshot published, without decoding it (None: unknown,
        or a store nobody else writes). A process compares it with what it serves."""
        return None

    def holds(self, snapshot: Snapshot) -> bool:
        """The host's copy is there for processes that start now, or is being written (the
        poller puts it back when a cache dir was deleted or the uWSGI cache wiped; what
        publishing again cannot mend, such as a full /dev/shm, counts as there)."""
        return self.token() is not None

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the host's durable copy holds what was published here (a store that
        writes its file behind the push); False if the disk refuses it or ``timeout`` passed."""
        return True

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` in this process when another process publishes."""

    def watched_files(self) -> List[Path]:
        """The files whose replacement is this store's push, for a store in front of another
        to watch with its own in one inotify instance (none: ``watch`` has its own means)."""
        return []

    def kept_in(self) -> Tuple[List[Path], List[Path]]:
        """The files and the directories that hold the host's copy, which the poller watches
        for deletions (a tmp cleaner, a wiped cache dir); none for a store in memory."""
        return [], []

    def rewatch(self) -> None:
        """Watch again if what is watched was replaced (a deleted and recreated cache dir)."""

    def close(self) -> None:
        """Stop watching."""
