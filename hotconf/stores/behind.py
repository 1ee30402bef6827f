"""Writing the durable copy behind the push: off the publisher's thread, newest first.

The layered store's front (the uWSGI cache, or the file store's copy in memory) is what the
workers wait for; the cache file on disk behind it is for processes that start later. Its
fsyncs stall for 50-800 ms now and then on a busy or virtual disk: written on the poller's
thread, such a stall held back the next release's long poll. Here one thread (a greenlet under
gevent, whose disk calls run in a real thread) writes the newest snapshot handed to it, drops
the ones a newer one replaced, and retries after a backoff while the disk refuses, so a
full disk loses no release while the process lives (what is still refused when it stops, or
when no thread can be had, waits for the next publish).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from functools import partial
from typing import Callable, Optional

from ..backoff import Backoff
from ..blocking import call_blocking
from ..snapshot import Snapshot

log = logging.getLogger("hotconf")

#: How long stopping (and the interpreter's exit) waits for a write in progress.
FLUSH_TIMEOUT = 5.0
#: How long a write waits before it starts (unless flushed): every reader watches the file
#: too, and its event, with the writer's work, lands after the workers have taken the
#: release from the front, not among them (at 16 workers it made the slowest ones slower);
#: a burst of releases is written once.
LINGER = 0.1

_live: weakref.WeakSet[WriteBehind] = weakref.WeakSet()


class WriteBehind:
    """Calls ``write(snapshot) -> bool`` on its own thread for the newest snapshot ``put``;
    False means the disk refused it: written again after a backoff (1 s, 2 s ... 30 s) unless
    a newer one came meanwhile. The thread ends once nothing is pending."""

    def __init__(self, write: Callable[[Snapshot], bool], what: str,
                 backoff: Optional[Backoff] = None, linger: float = LINGER):
        self._write, self._what = write, what
        self._backoff = backoff or Backoff(1.0, 30.0)
        self._linger = linger
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._pending: Optional[Snapshot] = None
        self._busy = False  # a thread is writing, or waiting to write again
        self._refused: Optional[Snapshot] = None  # waiting out a backoff to write it again
        self._dropped: Optional[Snapshot] = None  # refused, and not to be tried again
        self._closed = False
        self._hurry = 0  # flushes waiting: no lingering then

    def put(self, snapshot: Snapshot) -> None:
        with self._cond:
            if self._pending is None or snapshot.newer_than(self._pending):
                self._pending = snapshot
            self._closed = False
            self._cond.notify_all()  # a newer snapshot ends a backoff at once
            if self._busy:
                return
            self._busy = True
        try:
            threading.Thread(target=self._run, name="hotconf-write-behind", daemon=True).start()
        except RuntimeError:  # no thread to be had (a pids limit, the interpreter's exit)
            self._run(retry=False)  # written now, on the caller's thread

    @property
    def busy(self) -> bool:
        """Something put is being written, or waits to be written again."""
        return self._busy

    def _run(self, retry: bool = True) -> None:
        try:
            self._write_all(retry)
        except BaseException:  # gevent's GreenletExit too: the next put starts a writer
            with self._cond:
                self._busy = False
                self._cond.notify_all()
            raise

    def _write_all(self, retry: bool) -> None:
        failed = False
        while True:
            with self._cond:
                if not failed and retry:  # (on the caller's thread: no lingering)
                    self._linger_locked()
                snapshot, self._pending = self._pending, None
                if snapshot is None:
                    # Under the same lock as the look: a put after it starts a writer.
                    self._busy = False
                    self._cond.notify_all()
                    return
            try:
                # Under gevent, in a real thread: a stalled fsync must not freeze the worker.
                written = call_blocking(partial(self._write, snapshot))
            except Exception:  # noqa: BLE001 - the writer must outlive one failure
                log.exception("hotconf: writing %s failed", self._what)
                written = False
            if written:
                with self._cond:
                    if self._dropped is not None and not self._dropped.newer_than(snapshot):
                        self._dropped = None
                if failed:
                    log.info("hotconf: %s holds snapshot v%d again after %d attempt(s)",
                             self._what, snapshot.version, self._backoff.failures)
                    self._backoff.reset()
                failed = False
                continue
            failed = True
            with self._cond:
                if self._pending is None and not self._closed and retry:
                    self._pending = self._refused = snapshot  # again, after the backoff
                    self._cond.notify_all()
                    self._cond.wait(self._backoff.next_delay())
                    self._refused = None
                elif self._pending is None:
                    self._dropped = snapshot  # (closed, or no thread to try again on)

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until what was put is on disk (at once: no lingering); False if the disk
        refuses it (it is retried, unless closed) or ``timeout`` passed."""
        with self._cond:
            self._hurry += 1
            self._cond.notify_all()
            try:
                self._cond.wait_for(lambda: not self._busy or (
                    self._refused is not None and self._pending is self._refused), timeout)
            finally:
                self._hurry -= 1
            return not self._busy and self._dropped is None

    def _linger_locked(self) -> None:
        deadline = time.monotonic() + self._linger
        while not self._hurry and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def close(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Write what is pending (waiting up to ``timeout``), then stop retrying (until the
        next ``put``)."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _after_fork_in_child(self) -> None:
        # The thread did not survive the fork, and its lock may have been held at that
        # instant. What was pending is the parent's to write.
        self._reset()


def _flush_all() -> None:
    for writer in list(_live):
        writer.close()


def _reset_in_child() -> None:
    for writer in list(_live):
        writer._after_fork_in_child()


atexit.register(_flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
