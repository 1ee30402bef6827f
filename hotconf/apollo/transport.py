"""The HTTP transport: a thin layer over ``requests.Session``.

It signs the request as prepared (the exact path and query that go on the wire), bounds the
body it reads in size and in total time, and turns every failure into a hotconf error. The
session is per process: one inherited through ``fork()`` is dropped, never reused.
"""

from __future__ import annotations

import os
import socket
import time
import weakref
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Protocol, Tuple

import requests
import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .._version import __version__
from ..errors import ProtocolError, TransportError
from .urls import join

Signer = Callable[[str], Mapping[str, str]]

USER_AGENT = f"hotconf/{__version__}"


class Response(NamedTuple):
    status: int
    body: bytes
    headers: Mapping[str, str]
    url: str


class Transport(Protocol):
    """What the client needs from HTTP: one bounded GET, and ``close``. ``HttpTransport`` is
    the real one; ``hotconf.testing.MockTransport`` answers from a function."""

    def get(self, base: str, path_with_query: str, *, timeout: Tuple[float, float],
            sign: Optional[Signer] = None) -> Response: ...

    def close(self) -> None: ...


def _tracking_pools(in_use: weakref.WeakSet[Any]) -> Dict[str, type]:
    """urllib3 pool classes that note the connections checked out for a request, so that
    ``abort`` can shut their sockets from another thread (a held long poll ends at once)."""

    class Tracking:
        def _get_conn(self, timeout: Optional[float] = None) -> Any:
            conn = super()._get_conn(timeout)  # type: ignore[misc]
            in_use.add(conn)
            return conn

        def _put_conn(self, conn: Any) -> None:
            if conn is not None:  # urllib3 puts None back for a connection it dropped
                in_use.discard(conn)
            super()._put_conn(conn)  # type: ignore[misc]

    return {"http": type("Pool", (Tracking, HTTPConnectionPool), {}),
            "https": type("TLSPool", (Tracking, HTTPSConnectionPool), {})}


class HttpTransport:
    def __init__(self, max_body_bytes: int = 32 * 1024 * 1024):
        self.max_body_bytes = max_body_bytes
        self._session: Optional[requests.Session] = None
        self._pid = 0
        self._in_use: weakref.WeakSet[Any] = weakref.WeakSet()
        self._aborted = False

    def _get_session(self) -> requests.Session:
        if self._session is None or self._pid != os.getpid():
            # A session inherited through fork shares sockets with the parent: never reuse it.
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            session.trust_env = False  # no proxies from the environment on a config path
            self._in_use = weakref.WeakSet()
            pools = _tracking_pools(self._in_use)
            for adapter in session.adapters.values():
                manager = getattr(adapter, "poolmanager", None)
                if manager is not None and hasattr(manager, "pool_classes_by_scheme"):
                    manager.pool_classes_by_scheme = pools
            self._session, self._pid = session, os.getpid()
        return self._session

    def abort(self) -> None:
        """End every request in flight now (from another thread): its socket is shut down,
        so the request fails at once instead of waiting out a held long poll or a slow body.
        For good: a request that starts after it fails at once (its caller is stopping, and
        may have started it just before it could see so)."""
        self._aborted = True
        for conn in list(self._in_use):
            sock = getattr(conn, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def get(
        self,
        base: str,
        path_with_query: str,
        *,
        timeout: Tuple[float, float],
        sign: Optional[Signer] = None,
    ) -> Response:
        """GET ``base + path_with_query``; ``timeout`` is (connect, read). The read timeout
        also bounds the whole body, so a server that trickles bytes cannot hold us forever."""
        if self._aborted:
            raise TransportError(f"request to {base} not sent: the client is stopping")
        session = self._get_session()
        url = join(base, path_with_query)
        try:
            prepared = session.prepare_request(requests.Request("GET", url))
        except (requests.RequestException, ValueError) as exc:
            raise TransportError(f"invalid URL {url}: {exc}") from None
        if sign is not None:
            prepared.headers.update(sign(prepared.path_url))
        deadline = time.monotonic() + timeout[0] + timeout[1]
        try:
            resp = session.send(prepared, timeout=timeout, stream=True, allow_redirects=False)
            try:
                body = self._read_body(resp, deadline, url)
            finally:
                resp.close()
        except (requests.Timeout, urllib3.exceptions.TimeoutError):
            raise TransportError(
                f"timed out talking to {base} (connect {timeout[0]:g}s, read {timeout[1]:g}s)"
            ) from None
        except requests.ConnectionError as exc:
            raise TransportError(f"cannot reach {base}: {_reason(exc)}") from None
        except requests.RequestException as exc:
            raise TransportError(f"request to {base} failed: {_reason(exc)}") from None
        except urllib3.exceptions.HTTPError as exc:  # the body broke off (a reset, a bad proxy)
            raise TransportError(f"the answer from {base} broke off: {_reason(exc)}") from None
        headers: Dict[str, str] = dict(resp.headers)
        return Response(resp.status_code, body, headers, url)

    def _read_body(self, resp: requests.Response, deadline: float, url: str) -> bytes:
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise ProtocolError(f"{url}: body of {declared} bytes is over the limit")
        # read1 returns as soon as any bytes arrived, so the total deadline holds even against a
        # server that trickles one byte at a time (the read timeout is per socket read only).
        raw = resp.raw
        read1 = getattr(raw, "read1", None)
        chunks: List[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise TransportError(f"{url}: the answer took too long to arrive (a server or "
                                     f"proxy sending it a byte at a time?)")
            if read1 is not None:
                chunk = read1(65536, decode_content=True)
            else:  # urllib3 1.x: small reads keep the deadline checks close together
                chunk = raw.read(1024, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_body_bytes:
                raise ProtocolError(f"{url}: body is over the limit of {self.max_body_bytes} bytes")
            chunks.append(chunk)

    def close(self) -> None:
        if self._session is not None and self._pid == os.getpid():
            self._session.close()
        self._session = None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "Connection reset", "Connection aborted", "No route to host"):
        if marker in text:
            return marker.lower()
    return text[:200]
