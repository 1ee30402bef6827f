"""Runs the reload policy in a process: collects triggering changes from each swap, and fires
the reload action once they have settled (see ``policy.Debounce``).

Every process that holds the Config computes the same changes; a server-level action (uWSGI,
gunicorn) is taken only by the poller's process, so the server reloads once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable, Optional

from ..changes import ChangeEvent
from .actions import Reloader
from .policy import Debounce, ReloadPolicy, ReloadRequest, describe

log = logging.getLogger("hotconf")


class ReloadController:
    def __init__(self, policy: ReloadPolicy, reloader: Reloader, is_poller: Callable[[], bool],
                 clock: Callable[[], float] = time.monotonic):
        self.policy, self.reloader = policy, reloader
        self._is_poller = is_poller
        self._clock = clock
        self._debounce = Debounce(policy)
        self._lock = threading.Lock()
        self._timer: Optional[threading.Timer] = None
        self._closed = False

    def feed(self, events: Iterable[ChangeEvent]) -> None:
        changes = self.policy.triggering(events)
        if not changes:
            return
        with self._lock:
            self._debounce.add(self._clock(), changes)
            self._schedule_locked()

    def _schedule_locked(self) -> None:
        due = self._debounce.due_at()
        if due is None or self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(max(0.0, due - self._clock()), self._fire)
        self._timer.daemon = True
        self._timer.name = "hotconf-reload"
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            now = self._clock()
            due = self._debounce.due_at()
            if due is None or self._closed:
                return
            if due > now + 0.001:  # more changes arrived: wait for them to settle
                self._schedule_locked()
                return
            changes = self._debounce.fire(now)
        if not changes:
            log.info("hotconf: connection-level keys changed and changed back; no reload")
            return
        summary = describe(changes)
        if self.reloader.server_level and not self._is_poller():
            log.debug("hotconf: %s changed; the poller's process reloads the server", summary)
            return
        log.warning("hotconf: %s because %s changed", self.reloader.description, summary)
        try:
            self.reloader(ReloadRequest(changes, summary))
        except Exception as exc:  # noqa: BLE001 - a failed reload must not kill the poller
            log.error("hotconf: the reload failed (%s): %s; the new values are served, but "
                      "objects built from the old ones stay until the next reload", summary, exc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
