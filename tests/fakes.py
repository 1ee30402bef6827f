"""An in-memory Apollo config service for unit tests, answering through ``MockTransport``.

It answers like the real one (release keys and 304 on /configs, global notification ids on
/notifications/v2) but never holds a poll: a poll with nothing new answers 304 at once, so a
test drives the poller one ``step()`` at a time. ``fail`` makes the next answers fail.
"""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Tuple

from hotconf.apollo.client import ApolloClient
from hotconf.cache import LocalCache
from hotconf.errors import TransportError
from hotconf.options import Settings
from hotconf.process.poller import Poller
from hotconf.stores import LayeredStore, MemoryStore
from hotconf.testing import ManualClock, MockTransport, Request


class FakeApollo:
    def __init__(self, app_id: str = "demo", cluster: str = "default"):
        self.app_id, self.cluster = app_id, cluster
        self.releases: Dict[str, Tuple[str, Dict[str, str], int]] = {}  # ns -> (key, confs, id)
        self._next_id = 100
        self._release_no = 0
        self.fail: List[Tuple[str, object]] = []  # (path prefix, status or "down") in order
        self.transport = MockTransport(self.handle)

    @property
    def requests(self) -> List[Request]:
        return self.transport.requests

    def publish(self, namespace: str, configurations: Dict[str, str]) -> str:
        self._release_no += 1
        self._next_id += 1
        key = f"r{self._release_no}"
        self.releases[namespace] = (key, dict(configurations), self._next_id)
        return key

    def fail_next(self, path: str, how: object = 500) -> None:
        """The next request to ``path`` fails: an HTTP status, or "down" (unreachable)."""
        self.fail.append((path, how))

    def handle(self, request: Request) -> Tuple[int, object]:
        for i, (path, how) in enumerate(self.fail):
            if request.path.startswith(path):
                del self.fail[i]
                if how == "down":
                    raise TransportError(f"cannot reach {request.base}: connection refused")
                return int(how), b""  # type: ignore[call-overload]
        if request.path.startswith("/configs/"):
            namespace = request.path.split("/")[-1]
            if namespace not in self.releases:
                return 404, b""
            key, confs, _ = self.releases[namespace]
            if request.query.get("releaseKey") == key:
                return 304, b""
            return 200, {"appId": self.app_id, "cluster": self.cluster,
                         "namespaceName": namespace, "configurations": confs, "releaseKey": key}
        if request.path == "/notifications/v2":
            asked = json.loads(request.query["notifications"])
            changed = []
            for item in asked:
                release = self.releases.get(item["namespaceName"])
                if release is not None and release[2] > item["notificationId"]:
                    changed.append({"namespaceName": item["namespaceName"],
                                    "notificationId": release[2],
                                    "messages": {"details": {
                                        f"{self.app_id}+{self.cluster}+{item['namespaceName']}":
                                            release[2]}}})
            return (200, changed) if changed else (304, b"")
        return 404, b""

    def polled_ids(self, index: int = -1) -> Dict[str, int]:
        """The ids the client sent in its ``index``-th poll (default: the last)."""
        polls = [r for r in self.requests if r.path == "/notifications/v2"]
        return {item["namespaceName"]: item["notificationId"]
                for item in json.loads(polls[index].query["notifications"])}

    def fetches(self, namespace: Optional[str] = None) -> List[Request]:
        return [r for r in self.requests if r.path.startswith("/configs/")
                and (namespace is None or r.path.endswith("/" + namespace))]


def make_poller(apollo: FakeApollo, clock: ManualClock, cache_dir, store=None,
                namespaces=("application",), **tuning):
    """A poller for ``apollo`` stepped by hand: no sockets, no thread, sleeps move ``clock``.
    Returns (poller, store); the store defaults to memory with the cache file behind it."""
    settings = Settings.resolve(app_id=apollo.app_id, config_service="http://apollo.test",
                                cache_dir=cache_dir, namespaces=list(namespaces), environ={},
                                **tuning)
    store = store or LayeredStore(MemoryStore(), LocalCache.for_settings(settings),
                                  watch_file=False)
    client = ApolloClient(settings, transport=apollo.transport)
    return Poller(settings, store, client=client, clock=clock, wait=clock.sleep), store
