"""Test helpers: waiting on conditions, the dev server as a subprocess, a scriptable server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, List, Optional, Tuple

HOTCONF = [os.path.join(os.path.dirname(sys.executable), "hotconf")]  # the installed command


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02,
               message: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``hotconf serve`` in a child process; always stopped by its PID."""

    def __init__(self, port: int = 0, hold: float = 1.0, extra: Tuple[str, ...] = (),
                 env: Optional[dict] = None):
        self.port, self.hold, self.extra, self.env = port, hold, extra, env
        self.proc: Optional[subprocess.Popen] = None
        self.url = ""
        self.output: List[str] = []

    def start(self) -> ServeProcess:
        self.proc = subprocess.Popen(
            HOTCONF + ["serve", "--port", str(self.port), "--hold", str(self.hold), *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(self.env or {})},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if "listening on " in line:
                self.url = line.split("listening on ")[1].split()[0]
                self.port = int(self.url.rsplit(":", 1)[1])
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        self.stop()
        raise AssertionError("hotconf serve did not start:\n" + "".join(self.output))

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, sig)
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


Responder = Callable[[BaseHTTPRequestHandler], None]


class ScriptedServer:
    """An HTTP server on 127.0.0.1 whose answers a test scripts; counts the requests it gets."""

    def __init__(self, responder: Responder):
        self.responder = responder
        self.requests: List[Tuple[float, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                outer.requests.append((time.monotonic(), self.path))
                outer.responder(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def count(self, needle: str) -> int:
        return sum(1 for _, path in self.requests if needle in path)


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"",
          content_type: str = "application/json") -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
