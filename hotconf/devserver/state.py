"""The dev server's releases, notification ids, access keys and gray rules.

No HTTP here: the handler asks questions of this object and it answers as Apollo's config
service would (cluster -> data center -> default fallback, `.properties` stripping and
case-insensitive names, global increasing release-message ids, gray rules by label or ip).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Tuple

from ..formats import CONTENT_KEY, format_of

DEFAULT_CLUSTER = "default"
ABANDON_CHECK_SECONDS = 0.1


def strip_properties(name: str) -> str:
    return name[: -len(".properties")] if name.lower().endswith(".properties") else name


def new_release_key() -> str:
    return time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(8)


@dataclass(frozen=True)
class Release:
    release_key: str
    configurations: Mapping[str, str]


@dataclass(frozen=True)
class GrayRule:
    labels: FrozenSet[str]
    ips: FrozenSet[str]
    release: Release

    def matches(self, ip: Optional[str], label: Optional[str]) -> bool:
        return ("*" in self.ips or (ip is not None and ip in self.ips)
                or "*" in self.labels or (label is not None and label in self.labels))


@dataclass
class NamespaceRecord:
    name: str  # canonical spelling (the first one published)
    release: Optional[Release] = None
    gray: Optional[GrayRule] = None


@dataclass
class Counters:
    requests: Dict[str, int] = field(default_factory=dict)
    requests_by_app: Dict[str, Dict[str, int]] = field(default_factory=dict)
    long_polls_open: int = 0
    long_polls_open_by_app: Dict[str, int] = field(default_factory=dict)


class DevState:
    def __init__(self, hold_seconds: float = 60.0, first_id: Optional[int] = None,
                 clock: Callable[[], float] = time.time):
        self.hold_seconds = hold_seconds
        self._clock = clock
        self._cond = threading.Condition()
        self._records: Dict[Tuple[str, str, str], NamespaceRecord] = {}
        self._messages: Dict[str, int] = {}  # watch key (lower-case) -> release-message id
        # Ids keep rising across restarts of the dev server (Apollo's come from a database),
        # so a client that outlives a restart is not left waiting for ids it already passed.
        self._last_id = int(clock() * 1000) if first_id is None else first_id
        self._secrets: Dict[str, List[str]] = {}
        self.advertised: Optional[List[str]] = None
        self.counters = Counters()

    # -- names -------------------------------------------------------------------------------------
    def canonical(self, app_id: str, namespace: str) -> str:
        name = strip_properties(namespace)
        lower = name.lower()
        for (app, _, ns_lower), record in self._records.items():
            if app == app_id and ns_lower == lower:
                return record.name
        return name

    @staticmethod
    def _watch_key(app_id: str, cluster: str, namespace: str) -> str:
        return f"{app_id}+{cluster}+{namespace}"

    def _candidates(self, cluster: str, data_center: Optional[str]) -> List[str]:
        order = []
        if cluster != DEFAULT_CLUSTER:
            order.append(cluster)
        if data_center and data_center != cluster:
            order.append(data_center)
        order.append(DEFAULT_CLUSTER)
        return order

    # -- publishing --------------------------------------------------------------------------------
    def _record(self, app_id: str, cluster: str, namespace: str) -> NamespaceRecord:
        name = self.canonical(app_id, namespace)
        key = (app_id, cluster, name.lower())
        if key not in self._records:
            self._records[key] = NamespaceRecord(name)
        return self._records[key]

    def _emit(self, app_id: str, cluster: str, name: str) -> int:
        self._last_id += 1
        self._messages[self._watch_key(app_id, cluster, name).lower()] = self._last_id
        self._cond.notify_all()
        return self._last_id

    @staticmethod
    def _normalise(namespace: str, configurations: Mapping[str, str]) -> Dict[str, str]:
        values = {str(k): str(v) for k, v in configurations.items()}
        if not format_of(strip_properties(namespace)).is_properties and set(values) - {CONTENT_KEY}:
            raise ValueError(f"namespace {namespace!r} is not a properties namespace: publish its "
                             f"file text as 'content'")
        return values

    def publish(self, app_id: str, cluster: str, namespace: str,
                configurations: Mapping[str, str]) -> Tuple[str, int]:
        values = self._normalise(namespace, configurations)
        with self._cond:
            record = self._record(app_id, cluster, namespace)
            record.release = Release(new_release_key(), values)
            return record.release.release_key, self._emit(app_id, cluster, record.name)

    def publish_gray(self, app_id: str, cluster: str, namespace: str,
                     configurations: Mapping[str, str], labels=(), ips=()) -> Tuple[str, int]:
        values = self._normalise(namespace, configurations)
        if not labels and not ips:
            raise ValueError("a gray release needs at least one label or ip (or '*')")
        with self._cond:
            record = self._record(app_id, cluster, namespace)
            release = Release(new_release_key(), values)
            record.gray = GrayRule(frozenset(labels), frozenset(ips), release)
            # Gray changes notify the parent cluster's key, as Apollo's admin service does.
            return release.release_key, self._emit(app_id, cluster, record.name)

    def drop_gray(self, app_id: str, cluster: str, namespace: str) -> bool:
        with self._cond:
            record = self._records.get((app_id, cluster, self.canonical(app_id, namespace).lower()))
            if record is None or record.gray is None:
                return False
            record.gray = None
            self._emit(app_id, cluster, record.name)
            return True

    def delete(self, app_id: str, cluster: str, namespace: str) -> bool:
        with self._cond:
            key = (app_id, cluster, self.canonical(app_id, namespace).lower())
            record = self._records.pop(key, None)
            if record is None:
                return False
            self._emit(app_id, cluster, record.name)
            return True

    # -- access keys ---------------------------------------------------------------------------------
    def set_secret(self, app_id: str, secret: Optional[str]) -> None:
        with self._cond:
            if secret:
                self._secrets[app_id] = [secret]
            else:
                self._secrets.pop(app_id, None)

    def secrets_of(self, app_id: str) -> List[str]:
        return list(self._secrets.get(app_id, ()))

    # -- answering -------------------------------------------------------------------------------------
    def resolve(self, app_id: str, cluster: str, namespace: str, data_center: Optional[str] = None,
                ip: Optional[str] = None, label: Optional[str] = None
                ) -> Optional[Tuple[Release, str]]:
        """The release a client gets, and the cluster it came from."""
        with self._cond:
            lower = self.canonical(app_id, namespace).lower()
            for candidate in self._candidates(cluster, data_center):
                record = self._records.get((app_id, candidate, lower))
                if record is None:
                    continue
                if record.gray is not None and record.gray.matches(ip, label):
                    return record.gray.release, candidate
                if record.release is not None:
                    return record.release, candidate
        return None

    def _latest_locked(self, app_id: str, cluster: str, name: str,
                       data_center: Optional[str]) -> Tuple[int, Dict[str, int]]:
        latest, details = -1, {}
        for candidate in self._candidates(cluster, data_center):
            key = self._watch_key(app_id, candidate, name)
            nid = self._messages.get(key.lower())
            if nid is not None:
                details[key] = nid
                latest = max(latest, nid)
        return latest, details

    def wait_for_notifications(
        self, app_id: str, cluster: str, wanted: Mapping[str, int], data_center: Optional[str],
        hold: float, abandoned: Callable[[], bool] = lambda: False,
    ) -> Optional[List[dict]]:
        """Answer a long poll: the namespaces with a newer id, at once or when one is published;
        None when ``hold`` runs out (the handler answers 304) or the client went away."""
        deadline = time.monotonic() + hold
        with self._cond:
            ready = []
            for client_name, client_id in wanted.items():
                name = self.canonical(app_id, client_name)
                latest, details = self._latest_locked(app_id, cluster, name, data_center)
                if latest > client_id:
                    ready.append({"namespaceName": client_name, "notificationId": latest,
                                  "messages": {"details": details}})
            if ready:  # the immediate path: every namespace behind, with all its watch keys
                return ready
            held_since = self._last_id
            while True:
                # The push path, as Apollo's: the release message that woke the poll, for its
                # one namespace, with that one watch key.
                woke = []
                for client_name in wanted:
                    name = self.canonical(app_id, client_name)
                    _, details = self._latest_locked(app_id, cluster, name, data_center)
                    woke += [(nid, key, client_name) for key, nid in details.items()
                             if nid > held_since]
                if woke:
                    nid, key, client_name = min(woke)
                    return [{"namespaceName": client_name, "notificationId": nid,
                             "messages": {"details": {key: nid}}}]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or abandoned():
                    return None
                # Wake up now and then to notice a client that went away, so the open-poll
                # counter drops within 0.1 s of its death (tests that count polls allow for that).
                self._cond.wait(min(remaining, ABANDON_CHECK_SECONDS))

    # -- counters ----------------------------------------------------------------------------------
    def count(self, endpoint: str, app_id: Optional[str]) -> None:
        with self._cond:
            c = self.counters
            c.requests[endpoint] = c.requests.get(endpoint, 0) + 1
            if app_id:
                per = c.requests_by_app.setdefault(app_id, {})
                per[endpoint] = per.get(endpoint, 0) + 1

    def long_poll_opened(self, app_id: str, delta: int) -> None:
        with self._cond:
            c = self.counters
            c.long_polls_open += delta
            c.long_polls_open_by_app[app_id] = c.long_polls_open_by_app.get(app_id, 0) + delta

    def stats(self) -> dict:
        with self._cond:
            c = self.counters
            return {
                "requests": dict(c.requests),
                "requests_by_app": {a: dict(v) for a, v in c.requests_by_app.items()},
                "long_polls_open": c.long_polls_open,
                "long_polls_open_by_app": {a: n for a, n in c.long_polls_open_by_app.items() if n},
                "last_notification_id": self._last_id,
                "namespaces": sorted(f"{a}/{c_}/{r.name}" for (a, c_, _), r in self._records.items()),
            }
