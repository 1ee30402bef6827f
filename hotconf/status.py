"""What every process of a host serves, and whether that is healthy (pure).

Each armed process keeps a small record of itself (``ProcessRecord``) in the host's registry
(``registry.py``), and the poller one of its health (``PollerHealth``). Here they are read back
into a view of the host (``host_status``): one row per live process, STALE where a process
serves an older release than the host's newest for longer than the bound, and an exit status
for probes. No I/O: the registry, the CLI and the metrics feed it what they read.

Times are wall-clock seconds (``time.time()``): the records are written by different processes
and read by another one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

#: The record formats; a reader skips records of a format it does not know.
PROCESS_FORMAT = "hotconf-process/1"
POLLER_FORMAT = "hotconf-poller/1"

#: Default bound: stale after this many seconds behind the host (``stale_after``).
STALE_AFTER = 10.0

#: Exit statuses of ``hotconf status`` (and ``HostStatus.exit_status``): all current; no
#: process serves this configuration here; some process stale or the poller failing.
EXIT_CURRENT, EXIT_NOTHING, EXIT_UNHEALTHY = 0, 1, 5

#: Upper bounds (s) of the delivery histogram: release fetched by the poller -> applied here.
DELIVERY_BUCKETS: Tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                                       10.0, 30.0, 60.0)

#: Versions (and when the poller published them) kept in its health record, so a process's
#: staleness counts from the first release it missed, not the latest.
HISTORY = 32


@dataclass(frozen=True)
class Delivery:
    """A histogram of delivery delays: counts per bucket of ``DELIVERY_BUCKETS`` (+Inf last)."""

    counts: Tuple[int, ...] = (0,) * (len(DELIVERY_BUCKETS) + 1)
    total: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def add(self, seconds: float) -> Delivery:
        seconds = max(0.0, seconds)
        index = next((i for i, bound in enumerate(DELIVERY_BUCKETS) if seconds <= bound),
                     len(DELIVERY_BUCKETS))
        counts = list(self.counts)
        counts[index] += 1
        return Delivery(tuple(counts), self.total + seconds)

    def merged(self, other: Delivery) -> Delivery:
        return Delivery(tuple(a + b for a, b in zip(self.counts, other.counts)),
                        self.total + other.total)

    def to_dict(self) -> Dict[str, Any]:
        return {"counts": list(self.counts), "sum": round(self.total, 6)}

    @classmethod
    def from_dict(cls, raw: Any) -> Delivery:
        if not isinstance(raw, dict):
            return cls()
        counts = raw.get("counts")
        if (not isinstance(counts, list) or len(counts) != len(DELIVERY_BUCKETS) + 1
                or not all(isinstance(c, int) and c >= 0 for c in counts)):
            return cls()
        total = raw.get("sum")
        return cls(tuple(counts), float(total) if isinstance(total, (int, float)) else 0.0)


@dataclass(frozen=True)
class DependentState:
    """A resource (``cfg.resource``) or bound model (``cfg.bind``) in one process: what it is
    built from, and whether the last release it took failed to build or validate."""

    kind: str  # "resource" or "model"
    name: str
    keys: Tuple[str, ...]  # the key patterns it follows
    builds: int = 0  # built (resource) or applied (model) successfully in this process
    failures: int = 0
    built_at: Optional[float] = None
    error: Optional[str] = None  # the current failure, secrets masked
    failed_keys: Tuple[str, ...] = ()  # the keys the failure is about
    failing_since: Optional[float] = None
    building_since: Optional[float] = None  # a build under way (one that hangs shows)

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "keys": list(self.keys),
                "builds": self.builds, "failures": self.failures, "built_at": self.built_at,
                "error": self.error, "failed_keys": list(self.failed_keys),
                "failing_since": self.failing_since, "building_since": self.building_since}

    def troubled_since(self) -> Optional[float]:
        """Since when it has failed, or been stuck building (None: healthy)."""
        times = [t for t in (self.failing_since, self.building_since) if t is not None]
        return min(times) if times else None

    @classmethod
    def from_dict(cls, raw: Any) -> Optional[DependentState]:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            return None
        return cls(kind=_str(raw.get("kind"), "resource"), name=raw["name"],
                   keys=_strings(raw.get("keys")), builds=_int(raw.get("builds")) or 0,
                   failures=_int(raw.get("failures")) or 0, built_at=_num(raw.get("built_at")),
                   error=_str(raw.get("error"), None), failed_keys=_strings(raw.get("failed_keys")),
                   failing_since=_num(raw.get("failing_since")),
                   building_since=_num(raw.get("building_since")))


@dataclass(frozen=True)
class ProcessRecord:
    """What one process reports of itself (``cfg.status()`` returns this process's)."""

    pid: int
    role: str  # "poller", "reader", "idle"
    server: str = "other"  # "uwsgi", "gunicorn", "celery", "other"
    worker: Optional[int] = None  # uWSGI worker id, gunicorn worker age, Celery pool slot
    mule: Optional[int] = None  # uWSGI mule id
    started: Optional[int] = None  # the process's start time (/proc), to tell a reused pid
    pidns: Optional[int] = None  # its pid namespace (/proc), to tell whose pid this is
    shared: bool = True  # it follows the host's poller (False: a store of its own, it polls)
    armed_at: float = 0.0
    version: Optional[int] = None  # the snapshot it serves
    releases: Mapping[str, Optional[str]] = field(default_factory=dict)  # namespace -> key
    applied_at: Optional[float] = None  # when it swapped that snapshot in
    last_check: Optional[float] = None  # when it last made sure the store had nothing newer
    behind_since: Optional[float] = None  # it found the store ahead of it, and since when
    delivery: Delivery = field(default_factory=Delivery)
    reloads: Mapping[str, int] = field(default_factory=dict)  # reason -> server reloads fired
    hotconf_version: str = ""
    dependents: Tuple[DependentState, ...] = ()  # its resources and bound models

    def to_dict(self) -> Dict[str, Any]:
        return {"format": PROCESS_FORMAT, "pid": self.pid, "role": self.role,
                "server": self.server, "worker": self.worker, "mule": self.mule,
                "started": self.started, "pidns": self.pidns, "shared": self.shared,
                "armed_at": self.armed_at,
                "version": self.version,
                "releases": dict(self.releases), "applied_at": self.applied_at,
                "last_check": self.last_check, "behind_since": self.behind_since,
                "delivery": self.delivery.to_dict(), "reloads": dict(self.reloads),
                "hotconf_version": self.hotconf_version,
                "dependents": [d.to_dict() for d in self.dependents]}

    @classmethod
    def from_dict(cls, raw: Any) -> Optional[ProcessRecord]:
        """None for anything that is not a record of this format (skipped, never fatal)."""
        if not isinstance(raw, dict) or raw.get("format") != PROCESS_FORMAT:
            return None
        pid, role = raw.get("pid"), raw.get("role")
        if not isinstance(pid, int) or pid <= 0 or not isinstance(role, str):
            return None
        releases = raw.get("releases")
        reloads = raw.get("reloads")
        return cls(
            pid=pid, role=role, server=_str(raw.get("server"), "other"),
            worker=_int(raw.get("worker")), mule=_int(raw.get("mule")),
            started=_int(raw.get("started")), pidns=_int(raw.get("pidns")),
            shared=raw.get("shared") is not False,
            armed_at=_num(raw.get("armed_at")) or 0.0,
            version=_int(raw.get("version")),
            releases={str(k): (v if isinstance(v, str) else None)
                      for k, v in releases.items()} if isinstance(releases, dict) else {},
            applied_at=_num(raw.get("applied_at")), last_check=_num(raw.get("last_check")),
            behind_since=_num(raw.get("behind_since")),
            delivery=Delivery.from_dict(raw.get("delivery")),
            reloads={str(k): v for k, v in reloads.items() if isinstance(v, int)}
            if isinstance(reloads, dict) else {},
            hotconf_version=_str(raw.get("hotconf_version"), ""),
            dependents=tuple(d for d in (DependentState.from_dict(x) for x in raw["dependents"])
                             if d is not None) if isinstance(raw.get("dependents"), list) else ())


@dataclass(frozen=True)
class PollerHealth:
    """What the poller reports of its work with the config service."""

    pid: int
    started: Optional[int] = None
    pidns: Optional[int] = None
    config_service: Optional[str] = None
    since: float = 0.0  # polling since
    poll_timeout: Optional[float] = None  # a healthy poller succeeds at least this often
    last_success: Optional[float] = None  # a poll answered (304 included) or a fetch done
    last_poll: Optional[float] = None
    last_fetch: Optional[float] = None
    error: Optional[str] = None  # the current error, secrets masked
    error_kind: Optional[str] = None
    failing_since: Optional[float] = None  # the first failure after the last success
    backoff_seconds: Optional[float] = None  # the wait before the next attempt
    notifications: Mapping[str, int] = field(default_factory=dict)
    errors: Mapping[str, int] = field(default_factory=dict)  # kind -> failures, this poller
    history: Tuple[Tuple[int, float], ...] = ()  # (version, published at), oldest first

    def published(self, version: int, at: float) -> PollerHealth:
        history = tuple(h for h in self.history if h[0] < version) + ((version, at),)
        return replace(self, history=history[-HISTORY:])

    def succeeded(self, at: float) -> PollerHealth:
        """A poll answered and everything it announced fetched (a 304 included)."""
        return replace(self, last_success=at, error=None, error_kind=None, failing_since=None,
                       backoff_seconds=None)

    def failed(self, kind: str, message: str, at: float, backoff: float) -> PollerHealth:
        errors = dict(self.errors)
        errors[kind] = errors.get(kind, 0) + 1
        return replace(self, error=message, error_kind=kind, errors=errors,
                       failing_since=self.failing_since if self.failing_since is not None
                       else at, backoff_seconds=backoff)

    def to_dict(self) -> Dict[str, Any]:
        return {"format": POLLER_FORMAT, "pid": self.pid, "started": self.started,
                "pidns": self.pidns, "poll_timeout": self.poll_timeout,
                "config_service": self.config_service, "since": self.since,
                "last_success": self.last_success, "last_poll": self.last_poll,
                "last_fetch": self.last_fetch, "error": self.error,
                "error_kind": self.error_kind, "failing_since": self.failing_since,
                "backoff_seconds": self.backoff_seconds,
                "notifications": dict(self.notifications), "errors": dict(self.errors),
                "history": [list(h) for h in self.history]}

    @classmethod
    def from_dict(cls, raw: Any) -> Optional[PollerHealth]:
        if not isinstance(raw, dict) or raw.get("format") != POLLER_FORMAT:
            return None
        pid = raw.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return None
        notes, errors, history = raw.get("notifications"), raw.get("errors"), raw.get("history")
        return cls(
            pid=pid, started=_int(raw.get("started")), pidns=_int(raw.get("pidns")),
            poll_timeout=_num(raw.get("poll_timeout")),
            config_service=_str(raw.get("config_service"), None),
            since=_num(raw.get("since")) or 0.0, last_success=_num(raw.get("last_success")),
            last_poll=_num(raw.get("last_poll")), last_fetch=_num(raw.get("last_fetch")),
            error=_str(raw.get("error"), None), error_kind=_str(raw.get("error_kind"), None),
            failing_since=_num(raw.get("failing_since")),
            backoff_seconds=_num(raw.get("backoff_seconds")),
            notifications={str(k): v for k, v in notes.items() if isinstance(v, int)}
            if isinstance(notes, dict) else {},
            errors={str(k): v for k, v in errors.items() if isinstance(v, int)}
            if isinstance(errors, dict) else {},
            history=tuple((h[0], float(h[1])) for h in history
                          if isinstance(h, list) and len(h) == 2 and isinstance(h[0], int)
                          and isinstance(h[1], (int, float))) if isinstance(history, list)
            else ())


@dataclass(frozen=True)
class Status:
    """This process's part for one Config (``cfg.status()``): what it serves and since when,
    whether it found itself behind the host's store, and the poller's health if it polls."""

    process: ProcessRecord
    poller: Optional[PollerHealth]
    behind: bool  # the store has a newer snapshot than this process could apply
    stale: bool  # ...for longer than ``stale_after``

    @property
    def role(self) -> str:
        return self.process.role

    @property
    def version(self) -> Optional[int]:
        return self.process.version

    @property
    def releases(self) -> Mapping[str, Optional[str]]:
        return self.process.releases

    @property
    def applied_at(self) -> Optional[float]:
        return self.process.applied_at

    @property
    def last_check(self) -> Optional[float]:
        return self.process.last_check

    def to_dict(self) -> Dict[str, Any]:
        return {"process": self.process.to_dict(),
                "poller": self.poller.to_dict() if self.poller is not None else None,
                "behind": self.behind, "stale": self.stale}


@dataclass(frozen=True)
class HostHead:
    """The host's newest snapshot, as the cache index names it."""

    version: int
    published_at: float
    releases: Mapping[str, Optional[str]]


@dataclass(frozen=True)
class PendingReload:
    """A server reload the poller will fire at ``due`` (wall clock), for ``summary``."""

    summary: str
    due: float


@dataclass(frozen=True)
class ProcessRow:
    record: ProcessRecord
    current: bool  # serves the host's newest releases
    behind_for: Optional[float]  # seconds since the host had a release this process lacks
    stale: bool
    failing: Tuple[DependentState, ...] = ()  # resources/models failing longer than the bound


@dataclass(frozen=True)
class HostStatus:
    now: float
    stale_after: float
    head: Optional[HostHead]
    poller: Optional[PollerHealth]  # the live poller's health (None: nobody polls)
    poller_failing: bool  # failing for longer than the bound
    poller_silent: bool  # no success for longer than a poll's timeout + the bound (frozen?)
    pending_reload: Optional[PendingReload]
    rows: Tuple[ProcessRow, ...]

    @property
    def stale(self) -> List[ProcessRow]:
        return [row for row in self.rows if row.stale]

    @property
    def failing_dependents(self) -> List[Tuple[ProcessRow, DependentState]]:
        return [(row, dep) for row in self.rows for dep in row.failing]

    @property
    def problems(self) -> List[str]:
        """What makes the host unhealthy, in words (empty: healthy)."""
        found = []
        if not self.rows:
            found.append("no process on this host serves this configuration" +
                         (" (nothing has loaded it here)" if self.head is None else ""))
        if self.poller is None and self.needs_poller:
            found.append("no process polls the config service")
        elif self.poller is not None and self.poller.failing_since is not None and \
                self.poller_failing:
            found.append(f"the poller has been failing for "
                         f"{duration(self.now, self.poller.failing_since)}: {self.poller.error}")
        elif self.poller is not None and self.poller_silent:
            heard = self.poller.last_success or self.poller.since
            found.append(f"the poller (process {self.poller.pid}) has not heard from the config "
                         f"service for {duration(self.now, heard)}: stopped or hung?")
        for row in self.stale:
            found.append(f"process {row.record.pid} serves an older release than the host's "
                         f"for {row.behind_for:.0f} s")
        for row, dep in self.failing_dependents:
            what = f"process {row.record.pid}: {dep.kind} {dep.name!r}"
            if dep.failing_since is None:
                found.append(f"{what} has been building for "
                             f"{duration(self.now, dep.building_since)} (a factory that hangs?)")
                continue
            kept = ("its last good " + ("object" if dep.kind == "resource" else "values")
                    if dep.builds else "nothing to serve yet: access raises")
            found.append(f"{what} ({', '.join(dep.failed_keys or dep.keys)}) has been failing "
                         f"for {duration(self.now, dep.failing_since)}; it keeps {kept}: "
                         f"{dep.error}")
        return found

    @property
    def needs_poller(self) -> bool:
        """Some process follows the host's poller (one with a store of its own polls itself)."""
        return any(row.record.shared for row in self.rows)

    @property
    def exit_status(self) -> int:
        if not self.rows:
            return EXIT_NOTHING
        if self.stale or self.failing_dependents or self.poller_failing or \
                self.poller_silent or (
                self.poller is None and self.needs_poller):
            return EXIT_UNHEALTHY
        return EXIT_CURRENT


def behind(record: ProcessRecord, head: Optional[HostHead]) -> bool:
    """Does the process serve an older release than the host's newest? (An older snapshot
    version with the same releases is not behind: nothing it serves is out of date.)"""
    if head is None:
        return False
    if record.version is None:
        return True
    if record.version >= head.version:
        return False
    return any(record.releases.get(name) != key for name, key in head.releases.items())


def behind_since(record: ProcessRecord, head: HostHead,
                 history: Sequence[Tuple[int, float]]) -> float:
    """When the host got the first release this process lacks (never before it armed)."""
    missed = [at for version, at in history
              if version > (record.version if record.version is not None else -1)]
    since = min(missed) if missed else head.published_at
    return max(since, record.armed_at)


def host_status(records: Sequence[ProcessRecord], poller: Optional[PollerHealth],
                head: Optional[HostHead], now: float, stale_after: float = STALE_AFTER,
                pending_reload: Optional[PendingReload] = None) -> HostStatus:
    """The host's view: ``records`` of live processes, ``poller`` the live poller's health."""
    history = poller.history if poller is not None else ()
    rows = []
    for record in sorted(records, key=_order):
        lagging = behind(record, head)
        behind_for = None
        if lagging and head is not None:
            behind_for = max(0.0, now - behind_since(record, head, history))
        broken = tuple(d for d in record.dependents if d.troubled_since() is not None
                       and now - d.troubled_since() > stale_after)  # type: ignore[operator]
        rows.append(ProcessRow(record, current=not lagging, behind_for=behind_for,
                               stale=behind_for is not None and behind_for > stale_after,
                               failing=broken))
    failing = (poller is not None and poller.failing_since is not None
               and now - poller.failing_since > stale_after)
    heard = (poller.last_success or poller.since) if poller is not None else None
    silent = (poller is not None and bool(heard) and poller.poll_timeout is not None
              and now - heard > poller.poll_timeout + stale_after)  # type: ignore[operator]
    return HostStatus(now=now, stale_after=stale_after, head=head, poller=poller,
                      poller_failing=failing, poller_silent=silent,
                      pending_reload=pending_reload, rows=tuple(rows))


def _order(record: ProcessRecord) -> Tuple[int, int, int, int]:
    rank = {"poller": 0, "reader": 1}.get(record.role, 2)
    return (rank, record.mule is None, record.worker if record.worker is not None else 1 << 30,
            record.pid)


def duration(now: float, then: Optional[float]) -> str:
    """'12 s', '3 min', '1.5 h' from ``then`` to ``now``; 'never' for None."""
    if then is None:
        return "never"
    seconds = max(0.0, now - then)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def ago(now: float, then: Optional[float]) -> str:
    """'12 s ago', '3 min ago', 'never'."""
    text = duration(now, then)
    return text if then is None else f"{text} ago"


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _str(value: Any, default: Any) -> Any:
    return value if isinstance(value, str) else default


def _strings(value: Any) -> Tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()
