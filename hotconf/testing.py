"""Test seams: a transport that answers from a function, and a clock tests move by hand.

    from hotconf.apollo.client import ApolloClient
    from hotconf.testing import MockTransport, ManualClock

    def handler(request):
        if request.path == "/notifications/v2":
            return 304, b""
        return 200, {"appId": "demo", "cluster": "default", "namespaceName": "application",
                     "configurations": {"k": "v"}, "releaseKey": "r1"}

    client = ApolloClient(settings, transport=MockTransport(handler))

As httpx's ``MockTransport``: the code under test runs unchanged, without sockets, in
microseconds, so protocol rules (ids, backoff, 304s) are tested exhaustively and fast.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import parse_qsl, urlsplit

from .apollo.transport import Response, Signer
from .apollo.urls import join

Body = Union[bytes, str, Mapping[str, Any], List[Any], None]


@dataclass(frozen=True)
class Request:
    """What the client sent: ``path`` without the query, ``query`` decoded."""

    base: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    timeout: Tuple[float, float]

    @property
    def url(self) -> str:
        return self.base + self.path


class MockTransport:
    """Answers each request with ``handler(request)``: ``(status, body)`` where the body is
    bytes, text, or something JSON-encodable; a handler may raise ``TransportError`` to act as a
    server that cannot be reached. Every request is kept in ``requests``."""

    def __init__(self, handler: Callable[[Request], Tuple[int, Body]]):
        self.handler = handler
        self.requests: List[Request] = []
        self.closed = 0

    def get(self, base: str, path_with_query: str, *, timeout: Tuple[float, float],
            sign: Optional[Signer] = None) -> Response:
        parts = urlsplit(path_with_query)
        headers = dict(sign(path_with_query)) if sign is not None else {}
        request = Request(base, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                          headers, timeout)
        self.requests.append(request)
        status, body = self.handler(request)
        if body is None:
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode("utf-8")
        else:
            raw = json.dumps(body).encode("utf-8")
        return Response(status, raw, {}, join(base, path_with_query))

    def close(self) -> None:
        self.closed += 1


@dataclass
class ManualClock:
    """A monotonic clock that moves only when told to; ``sleep`` moves it (and records how
    long was slept), so a backoff schedule is read off ``sleeps``."""

    now: float = 1000.0
    sleeps: List[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
