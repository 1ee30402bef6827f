"""This process's entries in the host registry: its own record (``ProcessReport``) and, while it
polls, the poller's health (``PollerReport``).

Records are written when something changes (armed, a snapshot applied, a role change, a reload
fired) and when the safety net checks the store (about once a minute), never from a read:
``cfg.get`` does not touch them, and a release costs each process one small write in place,
made a moment after it applied the release (``APPLIED_WRITE_DELAY``; a burst of releases, one
write a second).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from .._version import __version__
from ..errors import ApolloError, AuthError, HTTPStatusError, NotFoundError, ProtocolError, TransportError
from ..masking import mask_text
from ..options import Settings
from ..registry import POLLER_FILE, Registry, pid_namespace, process_started
from ..runtime import ProcessFacts
from ..snapshot import Snapshot
from ..status import DependentState, PollerHealth, ProcessRecord

log = logging.getLogger("hotconf")

#: A healthy poller's record is rewritten at most this often (its polls may be answered often).
POLLER_WRITE_EVERY = 5.0

#: A check that changes nothing but its time rewrites the record at most this often (the
#: safety net checks once a minute, faster while behind the store). Each write costs about
#: half a millisecond of CPU: once a minute per process was measurable in the idle benchmark.
CHECK_WRITE_EVERY = 300.0

#: An applied release is written to the record this long after (releases applied meanwhile ride
#: along), by a thread of the record's own, so that the write stays out of the moment every
#: worker of the host takes the release in, and a disk that stalls a write never holds up a
#: delivery. Measured at 16 uWSGI workers with a mule, side by side in one run: the release's
#: p50 to all of them 9.6 -> 7.2 ms (p99 16.5 -> 12.2 ms).
APPLIED_WRITE_DELAY = 0.25
#: ...and while releases keep coming, at most once in this long: each write costs the writer
#: two wakeups, about 0.25 ms of CPU per worker, which a burst of releases paid every 0.25 s
#: in every worker at once.
APPLIED_WRITE_GAP = 1.0

_numbers = itertools.count()  # this process's roles, each with its record file


class ProcessReport:
    def __init__(self, registry: Registry, facts: ProcessFacts, instance_key: str,
                 stale_after: float, shared: bool = True, clock: Callable[[], float] = time.time):
        pid = os.getpid()
        self.registry = registry
        self._n = next(_numbers)
        self._clock = clock
        self._key = instance_key
        self._stale_after = stale_after
        self._lock = threading.RLock()  # one change at a time
        # One write at a time, taken before _lock. Reentrant: a signal handler's stop (gone())
        # may run on a thread in the middle of its own write.
        self._write_lock = threading.RLock()
        self._warned_behind = False
        self._store_version: Optional[int] = None
        self._written = 0.0
        self._dirty = threading.Event()  # an applied release waits for the writer thread
        self._writer_pid = 0  # the process whose writer thread runs (none after a fork)
        self._gone = False
        self.record = ProcessRecord(
            pid=pid, role="idle", server=facts.server, worker=facts.worker, mule=facts.mule,
            started=process_started(pid), pidns=pid_namespace(), shared=shared,
            armed_at=clock(), hotconf_version=__version__)

    @property
    def path(self) -> Path:
        return self.registry.record_path(self.record.pid, self._n)

    def _change(self, **changes: object) -> None:
        with self._lock:
            self.record = replace(self.record, **changes)  # type: ignore[arg-type]

    def _write(self) -> None:
        """Write the record as it is now. Outside ``_lock``, so a thread delivering a release
        never waits for a file write (a disk that stalls, a record made again by a rename);
        serialized, so a slow write can not put an older record over a newer one."""
        with self._write_lock:
            with self._lock:
                if self._gone:
                    return  # removed: the record must not come back
                record = self.record
                self._written = self._clock()
            self.registry.write_process(record, self._n)
            if self._gone:  # gone() ran meanwhile on this thread (a signal handler's stop)
                self.registry.remove_process(record.pid, self._n)

    def ensure(self) -> None:
        """Write the record again if it is gone (a wiped cache dir)."""
        if not self.path.exists():
            self._write()

    def role(self, name: str) -> None:
        if name != self.record.role:
            self._change(role=name)
            self._write()

    def applied(self, snapshot: Snapshot) -> None:
        with self._lock:  # two threads may deliver (a push, a request's check): only forward
            now = self._clock()
            record = self.record
            if record.version is not None and not snapshot.newer_than(record.version):
                return
            delivery = record.delivery
            if record.version is not None and snapshot.created_at > 0:
                # Release fetched by the poller (it stamps the snapshot) -> applied here. The
                # first snapshot a process loads is not a delivery: it may be long written.
                delivery = delivery.add(now - snapshot.created_at)
            self._change(version=snapshot.version, releases=snapshot.release_keys,
                         applied_at=now, last_check=now, delivery=delivery,
                         behind_since=self._behind_since(snapshot.version, self._store_version))
            self._say_if_caught_up()
        self._write_soon()

    def _write_soon(self) -> None:
        """Have the writer thread write the record ``APPLIED_WRITE_DELAY`` from now. Starting a
        thread waits for it to run: done once per process, not at each release."""
        if self._writer_pid != os.getpid():
            with self._lock:
                started = self._writer_pid == os.getpid() or self._gone
                if not started:
                    writer = threading.Thread(target=self._write_when_dirty, daemon=True,
                                              name="hotconf-record")
                    try:
                        writer.start()
                        started = True
                    except RuntimeError:  # no thread can start (the interpreter is exiting)
                        pass
                    else:
                        self._writer_pid = os.getpid()
            if not started:
                self._write()
                return
        self._dirty.set()

    def _write_when_dirty(self) -> None:
        while True:
            self._dirty.wait()
            time.sleep(APPLIED_WRITE_DELAY)
            while True:  # a burst: written once per APPLIED_WRITE_GAP until it ends
                self._dirty.clear()
                if self._gone:
                    return
                self._write()
                time.sleep(APPLIED_WRITE_GAP)
                if not self._dirty.is_set():
                    break

    def checked(self, store_version: Optional[int]) -> None:
        """The safety net compared the store with what this process holds. The record is
        rewritten when that changes what it says, and at least every ``CHECK_WRITE_EVERY``
        (its freshness is how another pid namespace tells it is alive)."""
        with self._lock:
            now = self._clock()
            self._store_version = store_version
            since = self._behind_since(self.record.version, store_version)
            write = (since != self.record.behind_since or now - self._written >= CHECK_WRITE_EVERY
                     or not self.path.exists())
            self._change(last_check=now, behind_since=since)
            self._say_if_behind(store_version)
            self._say_if_caught_up()
        if write:
            self._write()

    def _behind_since(self, held: Optional[int], store: Optional[int]) -> Optional[float]:
        if store is None or (held is not None and held >= store):
            return None
        return self.record.behind_since or self._clock()

    @property
    def behind(self) -> bool:
        return self.record.behind_since is not None

    def _say_if_behind(self, store_version: Optional[int]) -> None:
        since = self.record.behind_since
        if since is None or self._warned_behind or self._clock() - since <= self._stale_after:
            return
        self._warned_behind = True
        releases = ", ".join(f"{n}@{k}" for n, k in self.record.releases.items()) or "nothing"
        log.warning("hotconf: process %d is behind the host for %s for %.0f s: it serves "
                    "snapshot v%s (%s) and the host has v%s. It keeps trying; see `hotconf "
                    "status`", self.record.pid, self._key, self._clock() - since,
                    self.record.version, releases, store_version)

    def _say_if_caught_up(self) -> None:
        if self._warned_behind and self.record.behind_since is None:
            self._warned_behind = False
            log.warning("hotconf: process %d caught up for %s: it serves snapshot v%s",
                        self.record.pid, self._key, self.record.version)

    def reloaded(self, reason: str) -> None:
        with self._lock:
            reloads = dict(self.record.reloads)
            reloads[reason] = reloads.get(reason, 0) + 1
            self._change(reloads=reloads)
        self._write()

    def dependent(self, state: DependentState) -> None:
        """A resource or bound model of this process was built, applied or failed."""
        with self._lock:
            others = tuple(d for d in self.record.dependents
                           if (d.kind, d.name) != (state.kind, state.name))
            self._change(dependents=others + (state,))
        self._write()

    def gone(self) -> None:
        with self._write_lock:  # (after another thread's write in progress, none after)
            with self._lock:
                self._gone = True  # the writer thread must not put the record back
                self._dirty.set()  # (and ends)
            self.registry.remove_process(self.record.pid, self._n)


def error_kind(exc: BaseException) -> str:
    """The ``kind`` label of ``hotconf_poll_errors_total``."""
    if isinstance(exc, TransportError):
        return "transport"
    if isinstance(exc, AuthError):
        return "auth"
    if isinstance(exc, NotFoundError):
        return "not_found"
    if isinstance(exc, HTTPStatusError):
        return "http"
    if isinstance(exc, ProtocolError):
        return "protocol"
    return "other"


class PollerReport:
    """The poller's health, kept current in the registry while this process polls (not for a
    store of its own: each such process polls for itself, and one file cannot say it)."""

    def __init__(self, registry: Optional[Registry], clock: Callable[[], float] = time.time):
        pid = os.getpid()
        self.registry = registry
        self._clock = clock
        self._lock = threading.Lock()
        self._written = 0.0
        self.health = PollerHealth(pid=pid, started=process_started(pid),
                                   pidns=pid_namespace(), since=clock())

    def _update(self, health: PollerHealth, urgent: Optional[bool] = True) -> None:
        """``urgent``: write now; False: at most every ``POLLER_WRITE_EVERY``; None: not now
        (the next write carries it)."""
        with self._lock:
            self.health = health
            now = self._clock()
            if urgent is None or (not urgent and now - self._written < POLLER_WRITE_EVERY):
                return
            self._written = now
            if self.registry is not None:
                self.registry.write_poller(health)

    def ensure(self) -> None:
        """Write the health again if it is gone (a wiped cache dir)."""
        if self.registry is not None and not (self.registry.dir / POLLER_FILE).exists():
            self._update(self.health)

    def begin(self, settings: Settings) -> None:
        """On becoming the poller: say so at once (a stand-in's record would still be there)."""
        service = (settings.config_services or settings.meta_servers or (None,))[0]
        self._update(replace(self.health, poll_timeout=settings.poll_timeout,
                             config_service=self.health.config_service or _masked(service)))

    def polled(self, service: Optional[str], notifications: dict) -> None:
        """A poll answered (a success only once what it announced is fetched: ``succeeded``,
        which writes it; so the file's last success is never a poll behind)."""
        health = self.health
        self._update(replace(health, last_poll=self._clock(),
                             config_service=_masked(service) or health.config_service,
                             notifications=dict(notifications)), urgent=None)

    def succeeded(self) -> None:
        recovered = self.health.failing_since is not None
        self._update(self.health.succeeded(self._clock()), urgent=recovered)

    def fetched(self) -> None:
        self._update(replace(self.health, last_fetch=self._clock()), urgent=None)

    def failed(self, exc: ApolloError, backoff: float) -> None:
        self._update(self.health.failed(error_kind(exc), mask_text(str(exc)), self._clock(),
                                        backoff))

    def published(self, snapshot: Snapshot, notifications: dict) -> None:
        self._update(replace(self.health.published(snapshot.version, snapshot.created_at),
                             notifications=dict(notifications)))


def _masked(url: Optional[str]) -> Optional[str]:
    return mask_text(url) if url else None
