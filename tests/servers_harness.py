"""Real server processes for tests: started in their own session, always stopped by PID."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import requests

from hotconf.election import PollerLock
from hotconf.options import Settings
from tests.helpers import wait_until

SERVERS_DIR = Path(__file__).parent / "servers"
BIN = Path(sys.executable).parent


class ServerProcess:
    def __init__(self, argv: List[str], env: Dict[str, str], port: int, log_path: Path,
                 stop_signal: int = signal.SIGINT, cwd: Path = SERVERS_DIR):
        self.argv, self.env, self.port, self.log_path = argv, env, port, log_path
        self.stop_signal, self.cwd = stop_signal, cwd
        self.proc: Optional[subprocess.Popen] = None
        self.url = f"http://127.0.0.1:{port}"
        self.first_status: Optional[int] = None  # of the very first request the app answered
        self.first_latency: Optional[float] = None

    def start(self, timeout: float = 40, first_request: bool = True) -> ServerProcess:
        """Start and wait until it answers a request (or, with ``first_request=False``, only
        until its port accepts connections: no request has warmed any worker yet)."""
        self._spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited ({self.proc.returncode}):\n{self.log()}")
            if not first_request:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return self
                except OSError:
                    time.sleep(0.05)
                    continue
            try:
                sent = time.monotonic()
                status = requests.get(self.url + "/", timeout=15).status_code
                if self.first_status is None:
                    self.first_status, self.first_latency = status, time.monotonic() - sent
                if status == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"server did not answer within {timeout}s:\n{self.log()}")

    def _spawn(self) -> None:
        """The process, in a session of its own (stop() ends the whole session), its output
        appended to the log file."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env={**os.environ, **self.env},
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self, tail: Optional[int] = 6000) -> str:
        """The server's output (by default its end, for assertion messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-tail:] if tail else text

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, self.stop_signal)
                self.proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:  # whatever the server left behind (workers, mules) goes with its session
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def ask(url: str, sleep: float = 0.15, timeout: float = 10) -> Optional[dict]:
    try:
        r = requests.get(url + f"/?sleep={sleep}", timeout=timeout,
                         headers={"Connection": "close"})
        return r.json() if r.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return None


def every_worker(url: str, workers: int, want=None, timeout: float = 20.0,
                 concurrency: Optional[int] = None) -> Dict[int, dict]:
    """Ask concurrently (each request holds its worker a moment) until ``workers`` distinct pids
    have answered and the latest answer of each satisfies ``want``. Bounded in time."""
    latest: Dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    with concurrent.futures.ThreadPoolExecutor(concurrency or workers * 2) as pool:
        while time.monotonic() < deadline:
            for answer in pool.map(lambda _: ask(url), range(concurrency or workers * 2)):
                if answer:
                    latest[answer["pid"]] = answer
            good = {pid: a for pid, a in latest.items() if want is None or want(a)}
            if len(good) >= workers and all(want is None or want(a) for a in latest.values()):
                return latest
            if len(latest) > workers:  # a recycled worker left; keep only the current ones
                latest = {pid: a for pid, a in latest.items() if pid_alive(pid)}
    raise AssertionError(f"not every worker answered as wanted within {timeout}s: {latest}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def poller_pid(app_id: str, server: str, cache_dir: Path) -> Optional[int]:
    s = Settings.resolve(app_id=app_id, server=server, cache_dir=cache_dir, environ={})
    return PollerLock(cache_dir / f"{s.instance_key}.poller.lock").holder_pid()


UWSGI = str(BIN / "uwsgi")
CACHE2 = "name=hotconf,items=16,blocksize=262144"


def uwsgi(port: int, tmp_path: Path, env: Dict[str, str], *extra: str,
          processes: int = 4) -> ServerProcess:
    argv = [UWSGI, "--master", "--processes", str(processes), "--http-socket",
            f"127.0.0.1:{port}", "--module", "flask_app:app", "--pythonpath", str(SERVERS_DIR),
            "--virtualenv", sys.prefix, "--enable-threads", "--need-app", "--die-on-term",
            "--disable-logging", *extra]
    return ServerProcess(argv, env, port, tmp_path / "uwsgi.log")


def gunicorn(port: int, tmp_path: Path, env: Dict[str, str], *extra: str,
             workers: int = 4) -> ServerProcess:
    argv = [str(BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
            "--chdir", str(SERVERS_DIR), *extra, "flask_app:app"]
    return ServerProcess(argv, env, port, tmp_path / "gunicorn.log", signal.SIGTERM)


def session_pids(leader: int) -> List[int]:
    """Every process of a server started in its own session (master, workers, mules)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == leader:  # the session id
                pids.append(int(entry))
    return pids


def cpu_seconds(pids: List[int]) -> float:
    """CPU time of these processes so far, in nanoseconds' precision: the sum of every thread's
    time on a CPU from /proc/<pid>/task/<tid>/schedstat (/proc/<pid>/stat counts clock ticks of
    10 ms, too coarse for an idle server)."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total / 1e9


def idle_cpu(server: ServerProcess, seconds: float = 2.0) -> float:
    """CPU seconds the whole server uses while nobody talks to it."""
    pids = session_pids(server.proc.pid)
    before = cpu_seconds(pids)
    time.sleep(seconds)
    return cpu_seconds(pids) - before


def long_polls(apollo, app_id):
    return apollo.state.stats()["long_polls_open_by_app"].get(app_id, 0)


def assert_one_long_poll(apollo, app_id, handovers=False):
    """Exactly one long poll for the server. With ``handovers`` (the poller itself may be
    recycled meanwhile) a sample may fall in the hand-over gap; it may also catch the new
    poller's poll before the dev server noticed the old one's end (it looks every 0.1 s, and a
    standby takes over within tens of ms), but never two polls for longer than that."""
    wait_until(lambda: long_polls(apollo, app_id) == 1, timeout=15, message="one long poll")
    samples = []
    for _ in range(8):
        samples.append(long_polls(apollo, app_id))
        time.sleep(0.15)
    if handovers:
        assert max(samples) <= 2 and all(a + b <= 3 for a, b in zip(samples, samples[1:])), \
            samples
        wait_until(lambda: long_polls(apollo, app_id) == 1, timeout=15, message="one long poll")
    else:
        assert samples == [1] * 8, samples


def release_reaches_every_worker(apollo, env, url, workers, value):
    apollo.state.publish(env["APP_ID"], "default", "application", {"greeting": value})
    return every_worker(url, workers, want=lambda a: a["greeting"] == value)
