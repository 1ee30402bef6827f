"""A proxy on 127.0.0.1 in front of the real dev server that misbehaves on command.

`proxy.fault("/configs", "trickle")` makes every matching request get that fault until
`proxy.heal()`; everything else is forwarded to the dev server unchanged (long polls included).
It counts the requests it sees per endpoint, so tests can check that clients back off.
"""

from __future__ import annotations

import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler
from typing import Dict, List, Optional, Tuple

import requests

from tests.helpers import ScriptedServer

FAULTS = ("invalid_json", "wrong_shape", "wrong_types", "huge_declared", "huge_streamed",
          "trickle", "silent", "reset", "http_500", "http_502", "http_504")


class FaultyProxy:
    def __init__(self, upstream: str, delay: float = 0.0):
        """``delay``: seconds added to every forwarded request (a config service far away)."""
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        self.faults: Dict[str, str] = {}
        self._stop = threading.Event()
        self._server = ScriptedServer(self._respond)
        self.url = self._server.url

    @property
    def seen(self) -> List[Tuple[float, str]]:
        return self._server.requests

    def _respond(self, h: BaseHTTPRequestHandler) -> None:
        fault = self.fault_for(h.path)
        try:
            if fault is None:
                self.forward(h)
            else:
                self.misbehave(h, fault)
        except OSError:  # the client went away, or we reset it on purpose
            h.close_connection = True

    # -- control -----------------------------------------------------------------------------------
    def fault(self, path_prefix: str, kind: str) -> None:
        assert kind in FAULTS, kind
        self.faults[path_prefix] = kind

    def heal(self) -> None:
        self.faults.clear()

    def fault_for(self, path: str) -> Optional[str]:
        for prefix, kind in self.faults.items():
            if path.startswith(prefix):
                return kind
        return None

    def count(self, prefix: str, since: float = 0.0) -> int:
        return sum(1 for t, p in self.seen if p.startswith(prefix) and t >= since)

    # -- behaviour ---------------------------------------------------------------------------------
    def forward(self, h: BaseHTTPRequestHandler) -> None:
        if self.delay:
            self._stop.wait(self.delay)
        headers = {k: v for k, v in h.headers.items() if k.lower() in ("authorization", "timestamp")}
        r = requests.get(self.upstream + h.path, headers=headers, timeout=120,
                         allow_redirects=False)
        h.send_response(r.status_code)
        body = r.content if r.status_code != 304 else b""
        if r.status_code != 304:
            h.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def misbehave(self, h: BaseHTTPRequestHandler, kind: str) -> None:
        notifications = h.path.startswith("/notifications")
        bodies = {
            "invalid_json": b"{this is not json",
            "wrong_shape": b'{"unexpected": true}' if notifications else b"[1, 2, 3]",
            "wrong_types": (b'[{"namespaceName": 5, "notificationId": "seven"}]' if notifications
                            else b'{"appId": "a", "cluster": "default", "namespaceName": '
                                 b'"application", "releaseKey": "x", "configurations": {"k": 5}}'),
        }
        if kind in bodies:
            self._reply(h, 200, bodies[kind])
        elif kind.startswith("http_"):
            self._reply(h, int(kind[5:]), b"<html><body>Gateway Time-out</body></html>",
                        "text/html")
        elif kind == "huge_declared":
            h.send_response(200)
            h.send_header("Content-Length", str(200 * 1024 * 1024))
            h.end_headers()
            h.wfile.write(b"[" * 1024)
        elif kind == "huge_streamed":
            h.send_response(200)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            chunk = b"[" * 65536
            for _ in range(40 * 16):  # 40 MiB, unless the client gives up first
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        elif kind == "trickle":
            h.send_response(200)
            h.send_header("Content-Length", "1000")
            h.end_headers()
            for _ in range(1000):
                if self._stop.wait(0.5):
                    return
                h.wfile.write(b"[")
                h.wfile.flush()
        elif kind == "silent":
            self._stop.wait(120)  # accept, read the request, never answer
        elif kind == "reset":
            h.send_response(200)
            h.send_header("Content-Length", "5000")
            h.end_headers()
            h.wfile.write(b'[{"namespaceName": "appl')
            h.wfile.flush()
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()  # RST mid-body

    @staticmethod
    def _reply(h, status: int, body: bytes, content_type: str = "application/json") -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def __enter__(self) -> FaultyProxy:
        self._server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.__exit__(*exc)
