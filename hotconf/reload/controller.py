"""Runs the reload policy in a process: collects triggering changes from each swap, and fires
the reload action once they have settled (see ``policy.Debounce``).

Every process that holds the Config computes the same changes; a server-level action (uWSGI,
gunicorn) is taken only by the poller's process, so the server reloads once. The poller records
a pending reload in the host's record; if it dies inside the settle window, the next poller
fires it (``settle_pending``), so exactly one reload fires.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable, Optional

from ..changes import ChangeEvent
from .actions import Reloader
from .policy import Debounce, ReloadPolicy, ReloadRequest, describe
from .record import ReloadRecord

log = logging.getLogger("hotconf")


class ReloadController:
    def __init__(self, policy: ReloadPolicy, reloader: Reloader, is_poller: Callable[[], bool],
                 clock: Callable[[], float] = time.monotonic,
                 record: Optional[ReloadRecord] = None,
                 on_reload: Callable[[str], None] = lambda reason: None):
        """``on_reload(reason)`` counts each reload fired: ``"change"`` (keys changed) or
        ``"owed"`` (one a dead poller left pending)."""
        self.policy, self.reloader = policy, reloader
        self._on_reload = on_reload
        self._is_poller = is_poller
        self._clock = clock
        self._record = record if reloader.server_level else None
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
            due = self._debounce.due_at()
            record = self._record if self._is_poller() else None
            net = {ref: ch for ref, ch in self._debounce.pending.items() if ch[0] != ch[1]}
        if record is not None and due is not None:
            # The poller says a reload is pending, and when: if it dies before firing it,
            # the next poller fires it (settle_pending).
            if net:
                record.set_pending(describe(net), due - self._clock())
            else:
                record.clear()

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
            if self._record is not None and self._is_poller():
                self._record.clear()
            return
        summary = describe(changes)
        if self.reloader.server_level and not self._is_poller():
            log.debug("hotconf: %s changed; the poller's process reloads the server", summary)
            return
        if self._record is not None:
            with self._record.lock:
                # Cleared before it fires: a server reload may end this very process before a
                # record cleared afterwards would be, and the next poller would fire it again.
                self._record.clear()
                self._reload(ReloadRequest(changes, summary))
        else:
            self._reload(ReloadRequest(changes, summary))

    def settle_pending(self) -> None:
        """In the poller's process, on becoming the poller: fire a reload the previous poller
        recorded as pending and did not live to fire, once it is due (a timer waits for that),
        unless this process has the same change pending itself (it fires that)."""
        record = self._record
        if record is None or self._closed:
            return
        with self._lock:
            own = bool(self._debounce.pending)
        if own:
            return
        with record.lock:
            pending = record.pending()
            if pending is None:
                return
            wait = pending.due_at - time.time()
            if wait > 0:
                with self._lock:
                    if not self._closed:
                        timer = threading.Timer(wait + 0.01, self.settle_pending)
                        timer.daemon, timer.name = True, "hotconf-pending-reload"
                        timer.start()
                return
            log.warning("hotconf: firing the reload the previous poller left pending")
            record.clear()
            self._reload(ReloadRequest({}, pending.summary), reason="owed")

    def _reload(self, request: ReloadRequest, reason: str = "change") -> None:
        log.warning("hotconf: %s because %s changed", self.reloader.description, request.summary)
        self._on_reload(reason)
        try:
            self.reloader(request)
        except Exception as exc:  # noqa: BLE001 - a failed reload must not kill the poller
            log.error("hotconf: the reload failed (%s): %s; the new values are served, but "
                      "objects built from the old ones stay until the next reload",
                      request.summary, exc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
