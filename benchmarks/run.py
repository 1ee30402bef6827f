"""`make bench`: hotconf side by side with the Python Apollo clients, in one run, on this machine.

hotconf runs two ways under uWSGI prefork:
  hotconf         with a mule that polls and the uWSGI cache as the store (HOTCONF_POLLER=mule)
  hotconf-nomule  no mule, no cache2: one elected worker polls, the others read the cache file
Alternatives, each installed here into a virtual environment of its own from PyPI:
  acc  apollo-config-client 0.1.2, under uWSGI lazy-apps (one client per worker: the only way
       it works under uWSGI)
  pys  pyapollos 0.1.5 under uWSGI lazy-apps, read timeout 75 s (above the server's 60 s hold)
  file the "read the local cache file on every request" workaround
  dict a plain dict.get, the floor

Every server listens on 127.0.0.1, against hotconf's dev server in this process, and is stopped
by its PID (its whole session) when its measurement ends. Results: a table on stdout and
benchmarks/results/latest.json. `--quick` runs every measurement with tiny sizes (the tests use
it as a smoke run); `--no-peers` leaves the alternatives out.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from hotconf import Config  # noqa: E402
from hotconf.cache import LocalCache  # noqa: E402
from hotconf.devserver import DevServer  # noqa: E402
from hotconf.devserver.state import DevState  # noqa: E402
from hotconf.process.binding import STAND_IN_GRACE  # noqa: E402
from hotconf.snapshot import NamespaceSnapshot, Snapshot, diff  # noqa: E402
from tests.servers_harness import (  # noqa: E402
    UWSGI,
    ServerProcess,
    cpu_seconds,
    every_worker,
    pid_alive,
    poller_pid,
    session_pids,
)

APPS = ROOT / "benchmarks" / "apps"
VENVS = ROOT / "benchmarks" / ".venvs"
RESULTS = ROOT / "benchmarks" / "results"
PEERS = {"acc": "apollo-config-client==0.1.2", "pys": "pyapollos==0.1.5"}
# items: one per namespace plus two per app (the 1 MB config has 20 namespaces)
HOTCONF_CACHE2 = "name=hotconf,items=64,blocksize=262144"
NO_MULE = "hotconf-nomule"  # hotconf prefork without a mule or cache2: an elected worker polls


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary_ms(values: List[float]) -> Dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50_ms": round(pct(ms, 0.5), 1), "p99_ms": round(pct(ms, 0.99), 1),
            "max_ms": round(max(ms), 1)} if ms else {"n": 0}


# -- environments ----------------------------------------------------------------------------------
def peer_venv(name: str) -> Path:
    venv = VENVS / name
    stamp = venv / ".installed"
    if not stamp.exists():
        log(f"installing {PEERS[name]} into {venv}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        PEERS[name], "flask"], check=True)
        stamp.write_text(PEERS[name])
    return venv


class PollRecorder(DevState):
    """The dev server's state, which also notes when each long poll arrived and when it started
    to be held (the immediate answer, for a client that is behind, is not holding), per app."""

    def __init__(self, hold_seconds: float):
        super().__init__(hold_seconds)
        self.polls: Dict[str, List[List[Optional[float]]]] = {}  # app -> [[arrived, held]]

    def wait_for_notifications(self, app_id, cluster, wanted, data_center, hold,
                               abandoned=lambda: False):
        record: List[Optional[float]] = [time.monotonic(), None]
        self.polls.setdefault(app_id, []).append(record)

        def held_and_abandoned() -> bool:  # first asked once the poll waits
            if record[1] is None:
                record[1] = time.monotonic()
            return abandoned()

        return super().wait_for_notifications(app_id, cluster, wanted, data_center, hold,
                                              held_and_abandoned)

    def polls_since(self, app_id: str, since: float) -> List[List[Optional[float]]]:
        return [r for r in list(self.polls.get(app_id, ())) if r[0] is not None and r[0] >= since]


class Bench:
    def __init__(self, quick: bool, peers: bool, work: Path):
        self.quick, self.peers, self.work = quick, peers, work
        self.polls = PollRecorder(hold_seconds=60)
        self.apollo = DevServer(port=0, state=self.polls).start()
        self.venvs = {"hotconf": Path(sys.prefix)}
        if peers:
            for name in PEERS:
                self.venvs[name] = peer_venv(name)
        self._apps = 0

    def new_app(self, values: Optional[dict] = None) -> str:
        self._apps += 1
        app_id = f"bench{self._apps}"
        self.apollo.state.publish(app_id, "default", "application", values or {"k": "v0"})
        return app_id

    def clients(self, *hotconf: str) -> List[str]:
        return list(hotconf) + (list(PEERS) if self.peers else [])

    def uwsgi(self, client: str, app_id: str, workers: int, extra=(), env=None,
              mule: bool = True) -> ServerProcess:
        """``client`` is an app of benchmarks/apps (hotconf, baseline, a peer) or NO_MULE."""
        tag = f"{client}-{app_id}-{workers}"
        if client == NO_MULE:
            client, mule = "hotconf", False
        port = free_port()
        swap_log = self.work / f"{tag}.swaps"
        cache_dir = self.work / f"cache-{tag}"
        base_env = {"APP_ID": app_id, "APOLLO_META": self.apollo.url,
                    "APOLLO_CONFIG": self.apollo.url, "SWAP_LOG": str(swap_log),
                    "APOLLO_CACHE_DIR": str(cache_dir),
                    "PEER_CACHE": str(self.work / f"peer-cache-{tag}"), **(env or {})}
        argv = [UWSGI, "--master", "--processes", str(workers), "--http-socket",
                f"127.0.0.1:{port}", "--module", f"{client}_app:app", "--pythonpath", str(APPS),
                "--virtualenv", str(self.venvs.get(client, sys.prefix)), "--enable-threads",
                "--need-app", "--die-on-term", "--disable-logging", "--listen", "100"]
        if client == "hotconf" and mule:
            argv += ["--cache2", HOTCONF_CACHE2, "--mule=hotconf_mule.py"]
            base_env["HOTCONF_POLLER"] = "mule"
        elif client in PEERS:
            argv += ["--lazy-apps"]
        server = ServerProcess(argv + list(extra), base_env, port, self.work / f"{tag}.log",
                               signal.SIGINT, cwd=APPS)
        server.swap_log, server.cache_dir, server.app_id = swap_log, cache_dir, app_id
        server.start(timeout=90)
        try:
            # The workers' pids (a mule logs its swaps too, but serves no request)
            server.worker_pids = set(every_worker(server.url, workers, timeout=60))
        except BaseException:
            server.stop()  # a server that never got ready is stopped here: nobody else will
            raise
        return server

    def close(self) -> None:
        self.apollo.stop()


class SwapLog:
    """A swap log ("pid release monotonic" lines), read as it grows: each read parses only what
    was appended since the last. The harness looks every 2 ms while it waits for the workers;
    re-parsing the whole file each time cost it up to 4 ms of CPU per look by the end of a
    16-worker row (6,400 lines), on the 2 cores the workers it times share."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: List[tuple] = []
        self._offset, self._partial = 0, b""

    def read(self) -> List[tuple]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            return self.entries
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")  # the last: not one yet
        for line in lines:
            if line:
                pid, release, at = line.split()
                self.entries.append((int(pid), release.decode(), float(at)))
        return self.entries


def swaps(path: Path) -> List[tuple]:
    return SwapLog(path).read()


# -- 1. read cost ------------------------------------------------------------------------------------
def read_cost(b: Bench) -> dict:
    n = 20_000 if b.quick else 200_000
    out: dict = {"calls": n, "plain": {}, "uwsgi": {}}
    for client in ["hotconf"] + (list(PEERS) if b.peers else []):
        app_id = b.new_app({"k": "v0"})
        getter = {"hotconf": "a.cfg.get('k')",
                  "acc": "a.cm.get_value('k', None, 'application')",
                  "pys": "a.client.get_value('k', None, namespace='application')"}[client]
        # os._exit: pyapollos' poller is a non-daemon thread that would keep the process alive
        script = (f"import json, os, sys; sys.path.insert(0, {str(APPS)!r}); "
                  f"import {client}_app as a, common; "
                  f"print(json.dumps(common.read_costs(lambda: {getter}, {n})), flush=True); "
                  f"os._exit(0)")
        env = {**os.environ, "APP_ID": app_id, "APOLLO_META": b.apollo.url,
               "APOLLO_CONFIG": b.apollo.url, "APOLLO_CACHE_DIR": str(b.work / f"plain-{app_id}"),
               "PEER_CACHE": str(b.work / f"plain-peer-{app_id}")}
        python = str(b.venvs.get(client, Path(sys.prefix)) / "bin" / "python")
        proc = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300,
                              env=env, cwd=str(APPS))
        if proc.returncode == 0:
            out["plain"][client] = json.loads(proc.stdout.strip().splitlines()[-1])
        else:
            out["plain"][client] = {"error": proc.stderr.strip().splitlines()[-1:]}
        server = b.uwsgi(client, app_id, 2)
        try:
            result = requests.get(server.url + f"/bench/read?n={n}", timeout=300).json()
            if client == "hotconf":
                flat = requests.get(server.url + f"/bench/read?n={n}", timeout=300).json()
                result["file_read_ns"] = flat.get("file_read_ns")
            out["uwsgi"][client] = result
        finally:
            server.stop()
    return out


# -- 2. propagation -------------------------------------------------------------------------------
class LightLoad:
    """2 threads, one request every 20 ms each: bounded, stops when told."""

    def __init__(self, url: str):
        self.url, self.stop = url, threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 600
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                requests.get(self.url + "/", timeout=5)
            except requests.RequestException:
                pass
            self.stop.wait(0.02)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def measure_propagation(b: Bench, server, app_id: str, workers: int,
                        releases: int, make_values: Callable[[int], dict],
                        namespace: str = "application") -> List[float]:
    """Publish ``releases`` times; each delay is until ``workers`` processes logged the swap.
    Only the server's workers count when it knows them: hotconf's mule logs its swaps too, and
    counting it would stop the clock before the last worker swapped."""
    counted = getattr(server, "worker_pids", None)
    swap_log = SwapLog(server.swap_log)
    delays = []
    for i in range(releases):
        before = len(swap_log.read())
        b.apollo.state.publish(app_id, "default", namespace, make_values(i))
        accepted = time.monotonic()
        deadline = accepted + 10
        while time.monotonic() < deadline:
            new = [s for s in swap_log.read()[before:] if not counted or s[0] in counted]
            if len({pid for pid, _, _ in new}) >= workers:
                delays.append(max(t for _, _, t in new) - accepted)
                break
            time.sleep(0.002)
        else:
            delays.append(float("inf"))
        time.sleep(0.05)
    return delays


def propagation_floor(b: Bench, releases: int, warmup: int = 0) -> Dict[str, float]:
    """The same publishes, timed the same way, for one plain process polling for itself."""
    app_id = b.new_app()
    swap_log = b.work / f"floor-{app_id}.swaps"
    env = {**os.environ, "APP_ID": app_id, "APOLLO_META": b.apollo.url,
           "APOLLO_CACHE_DIR": str(b.work / f"cache-floor-{app_id}"), "SWAP_LOG": str(swap_log)}
    with open(b.work / f"floor-{app_id}.log", "ab") as err:
        proc = subprocess.Popen([sys.executable, str(APPS / "floor_client.py")], cwd=str(APPS),
                                env=env, stdout=subprocess.PIPE, stderr=err,
                                start_new_session=True)
    try:
        ready = threading.Thread(target=proc.stdout.readline, daemon=True)
        ready.start()
        ready.join(30)
        if ready.is_alive() or proc.poll() is not None:
            raise AssertionError(f"the floor client did not start (see {b.work})")
        client = types.SimpleNamespace(swap_log=swap_log, worker_pids={proc.pid})
        time.sleep(0.5)
        first = warmed(b, client, app_id, 1, warmup)
        delays = measure_propagation(b, client, app_id, 1, releases, lambda i: {"k": f"f{i + 1}"})
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
    result = summary_ms(delays)
    if first is not None:
        result.update(first_ms=round(first * 1000, 1), warmup=warmup)
    return result


def first_of(r: Dict[str, float]) -> str:
    """The report's note of the first release after the start (not in the figures)."""
    return (f"; the first after start, of {r.get('warmup', WARMUP_RELEASES)} uncounted: "
            f"{r['first_ms']} ms" if "first_ms" in r else "")


def with_floor(r: Dict[str, float], floor: Dict[str, float]) -> Dict[str, float]:
    if r.get("p99_ms") is not None and floor.get("p99_ms"):
        r["p99_over_floor"] = round(r["p99_ms"] / floor["p99_ms"], 1)
    return r


#: Releases published, and not counted, before a propagation row is measured (the floor's and
#: every client's alike): a process's first releases are slower while CPython specializes the
#: code on their path (it does after about 8 runs of a function): at 16 workers the first
#: release took 10.3 ms, the tenth 6.0 ms. The first one's delay is kept in the row as
#: ``first_ms``.
WARMUP_RELEASES = 10


def warmed(b: Bench, server, app_id: str, workers: int, warmup: int) -> Optional[float]:
    """Publish ``warmup`` releases, uncounted; the first one's delay (s)."""
    delays = measure_propagation(b, server, app_id, workers, warmup, lambda i: {"k": f"w{i}"})
    return delays[0] if delays else None


def propagation(b: Bench) -> dict:
    # 200: with 50, "p99" was the largest of 50 samples, the floor's too, and the ratio of two
    # maxima moved by a third between runs of the same code.
    releases = 5 if b.quick else 200
    warmup = 1 if b.quick else WARMUP_RELEASES
    counts = [2] if b.quick else [4, 8, 16]
    floor = propagation_floor(b, releases, warmup)
    log(f"propagation floor (1 plain process): {floor}")
    out: dict = {"floor": floor}
    for client in b.clients("hotconf", NO_MULE):
        for workers in counts:
            app_id = b.new_app()
            server = b.uwsgi(client, app_id, workers, env={"BENCH_DETECT": "1"})
            try:
                time.sleep(0.5)
                first = warmed(b, server, app_id, workers, warmup)
                for loaded in (False, True):  # the same server, idle then under light load
                    load = LightLoad(server.url) if loaded else None
                    mode = "load" if loaded else "idle"
                    try:
                        time.sleep(0.5)
                        delays = measure_propagation(b, server, app_id, workers, releases,
                                                     lambda i, m=mode: {"k": f"{m}{i + 1}"})
                    finally:
                        if load:
                            load.close()
                    key = f"{client} {workers}w {mode}"
                    out[key] = with_floor(summary_ms(delays), floor)
                    if not loaded and first is not None:
                        out[key].update(first_ms=round(first * 1000, 1), warmup=warmup)
                    log(f"propagation {key}: {out[key]}")
            finally:
                server.stop()
    return out


# -- 3. connections and requests per release ---------------------------------------------------------
def connections(b: Bench) -> dict:
    counts = [1, 2] if b.quick else [1, 4, 8, 16]
    out: dict = {}
    for client in ["hotconf"] + (list(PEERS) if b.peers else []):
        for workers in counts:
            app_id = b.new_app()
            server = b.uwsgi(client, app_id, workers, env={"BENCH_DETECT": "1"})
            try:
                def open_polls(app_id: str = app_id) -> int:
                    return b.apollo.state.stats()["long_polls_open_by_app"].get(app_id, 0)

                deadline = time.monotonic() + 15  # a loaded machine: the poll may be late
                while open_polls() < workers and time.monotonic() < deadline:
                    time.sleep(0.1)
                    if open_polls() >= 1 and client == "hotconf":
                        break
                time.sleep(1.0)
                polls = open_polls()
                before = dict(b.apollo.state.stats()["requests_by_app"].get(app_id, {}))
                n = 3 if b.quick else 5
                measure_propagation(b, server, app_id, workers, n, lambda i: {"k": f"r{i}"})
                time.sleep(0.5)
                after = b.apollo.state.stats()["requests_by_app"].get(app_id, {})
                per = {k: round((after.get(k, 0) - before.get(k, 0)) / n, 2)
                       for k in ("notifications", "configs")}
            finally:
                server.stop()
            out[f"{client} {workers}w"] = {"long_polls": polls, "per_release": per}
            log(f"connections {client} {workers}w: {out[f'{client} {workers}w']}")
    return out


# -- 4. idle cost and memory --------------------------------------------------------------------------
def context_switches(pids: List[int]) -> Dict[str, int]:
    """Voluntary + involuntary context switches so far, summed over every thread of these
    processes (each wakeup of a sleeping thread is one), and how many threads there are."""
    switches = threads = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
            except OSError:
                continue
            threads += 1
            for line in status.splitlines():
                if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                    switches += int(line.split()[1])
    return {"switches": switches, "threads": threads}


def process_memory(pid: int) -> Optional[Dict[str, int]]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    return {"rss_kb": int(status.split("VmRSS:")[1].split()[0]),
            "pss_kb": int(rollup.split("Pss:")[1].split()[0])}


def worker_memory(server: ServerProcess) -> Dict[str, float]:
    """RSS and PSS per worker (the processes that answer requests), apart from the others of
    the server (a mule); and the PSS of the whole server, master included: what it costs."""
    workers, others, total_pss = [], [], 0
    for pid in session_pids(server.proc.pid):
        mem = process_memory(pid)
        if mem is None:
            continue
        total_pss += mem["pss_kb"]
        if pid in server.worker_pids:
            workers.append(mem)
        elif pid != server.proc.pid:
            others.append(mem)
    out = {"rss_kb": round(statistics.mean(m["rss_kb"] for m in workers)),
           "pss_kb": round(statistics.mean(m["pss_kb"] for m in workers)),
           "workers": len(workers), "server_pss_kb": total_pss}
    if others:
        out["other_processes"] = len(others)
        out["other_rss_kb"] = round(statistics.mean(m["rss_kb"] for m in others))
        out["other_pss_kb"] = round(statistics.mean(m["pss_kb"] for m in others))
    return out


def big_properties(total_bytes: int) -> dict:
    keys = max(1, total_bytes // 110)
    return {f"key.{i:05d}": "x" * 96 for i in range(keys)} | {"k": "v0"}


def idle_window(servers: Dict[str, ServerProcess], seconds: float) -> Dict[str, dict]:
    """CPU and wakeups of each whole server (every process of its session) over one window
    that all of them share; then each one's extra over the baseline app's."""
    def sample() -> Dict[str, tuple]:
        return {c: (cpu_seconds(session_pids(s.proc.pid)),
                    context_switches(session_pids(s.proc.pid))) for c, s in servers.items()}

    before, started = sample(), time.monotonic()
    time.sleep(seconds)
    after, elapsed = sample(), time.monotonic() - started
    out: Dict[str, dict] = {}
    for client in servers:
        used = after[client][0] - before[client][0]
        woke = after[client][1]["switches"] - before[client][1]["switches"]
        out[client] = {"cpu_seconds": round(used, 3),
                       "cpu_percent_of_core": round(100 * used / elapsed, 3),
                       "wakeups_per_s": round(woke / elapsed, 1),
                       "threads": after[client][1]["threads"]}
    base = out.get("baseline")
    for client, r in out.items():
        if base is not None and client != "baseline":
            r["added_cpu_percent"] = round(r["cpu_percent_of_core"] - base["cpu_percent_of_core"], 3)
            r["added_wakeups_per_s"] = round(r["wakeups_per_s"] - base["wakeups_per_s"], 1)
    return out


def idle_and_memory(b: Bench) -> dict:
    """Idle CPU and wakeups at each worker count, every client's server side by side in one
    window, all loaded with the big config; memory per worker from the 4-worker servers."""
    seconds = 2 if b.quick else 60
    counts = [2] if b.quick else [4, 8, 16]
    memory_at = 4 if 4 in counts else counts[0]
    size = 100_000 if b.quick else 1_000_000
    out: dict = {"idle_seconds": seconds, "config_bytes": size, "idle": {},
                 "memory": {"workers": memory_at}}
    for workers in counts:
        servers: Dict[str, ServerProcess] = {}
        try:
            for client in b.clients("baseline", "hotconf", NO_MULE):
                servers[client] = b.uwsgi(client, b.new_app(big_properties(size)), workers)
            time.sleep(2 if b.quick else 5)  # first loads and elections over
            out["idle"][f"{workers}w"] = idle_window(servers, seconds)
            log(f"idle {workers}w: {out['idle'][f'{workers}w']}")
            if workers == memory_at:
                memory = {c: worker_memory(s) for c, s in servers.items()}
                base = memory["baseline"]
                for client, r in memory.items():
                    if client != "baseline":
                        r["added_rss_kb_per_worker"] = r["rss_kb"] - base["rss_kb"]
                        r["added_pss_kb_per_worker"] = r["pss_kb"] - base["pss_kb"]
                        r["added_server_pss_kb"] = r["server_pss_kb"] - base["server_pss_kb"]
                out["memory"].update(memory)
                log(f"memory {workers}w: {memory}")
        finally:
            for server in servers.values():
                server.stop()
    return out


# -- 5. scale -------------------------------------------------------------------------------------------
def scale(b: Bench) -> dict:
    """One-key releases of a small config (one namespace, a few keys) and of the big one
    (``namespaces`` x ``keys``, one namespace released), on servers of the same settings at 4
    workers, side by side, the releases alternating; with the mule and without."""
    namespaces = 4 if b.quick else 20
    keys = 50 if b.quick else 500
    releases = 5 if b.quick else 200  # p99 is then the third largest: one disk stall is not it
    names = [f"ns{i:02d}" for i in range(namespaces)]
    small_keys = {f"key.{j}": "y" * 16 for j in range(5)}

    def values(size: str, i: int) -> dict:
        if size == "small":
            return {"k": f"v{i}", **small_keys}
        return {"k": f"v{i}", **{f"key.{j:03d}": "y" * 96 for j in range(keys)}}

    runs: dict = {}
    for client in ("hotconf", NO_MULE):
        apps = {"small": b.new_app(values("small", 0)), "big": b.new_app()}
        for name in names:
            b.apollo.state.publish(apps["big"], "default", name, values("big", 0))
        servers: Dict[str, ServerProcess] = {}
        try:
            servers["small"] = b.uwsgi(client, apps["small"], 4)
            servers["big"] = b.uwsgi(client, apps["big"], 4,
                                     env={"BENCH_NAMESPACES": ",".join(names)})
            time.sleep(0.5)
            delays: Dict[str, List[float]] = {"small": [], "big": []}
            for i in range(1, releases + 1):
                for size in ("small", "big"):
                    delays[size] += measure_propagation(
                        b, servers[size], apps[size], 4, 1, lambda _, s=size, n=i: values(s, n),
                        "application" if size == "small" else names[0])
        finally:
            for server in servers.values():
                server.stop()
        run = {size: summary_ms(d) for size, d in delays.items()}
        if run["small"].get("p99_ms") and run["big"].get("p99_ms") is not None:
            run["ratio_p99"] = round(run["big"]["p99_ms"] / run["small"]["p99_ms"], 1)
        runs[f"{client} 4w"] = run
        log(f"scale {client} 4w: {run}; slowest big: "
            f"{sorted(round(d * 1000, 1) for d in delays['big'])[-3:]}")
    # The cost of one release, in one process, on the same data.
    base = {n: NamespaceSnapshot(n, {f"key.{j:03d}": "y" * 96 for j in range(keys)} | {"k": "v0"},
                                 "r0") for n in names}
    old = Snapshot(apps["big"], "default", base, 1)
    new = old.replace({names[0]: NamespaceSnapshot(names[0], dict(base[names[0]]) | {"k": "v1"},
                                                   "r1")})
    timings = {}
    start = time.perf_counter()
    diff(old, new)
    timings["diff_ms"] = (time.perf_counter() - start) * 1000
    cache = LocalCache(b.work / "scale-cache", apps["big"], "default")
    cache.save(old)
    held = cache.load()
    start = time.perf_counter()
    cache.save(new)  # the changed namespace's part, then the index
    timings["store_write_ms"] = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    cache.load(previous=held)  # the index, then the one part that changed
    timings["reader_swap_ms"] = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    cache.load()
    timings["reader_full_parse_ms"] = (time.perf_counter() - start) * 1000
    out = {"namespaces": namespaces, "keys_each": keys, "snapshot_bytes": len(new.to_json()),
           "small_keys": len(values("small", 0)), "runs": runs,
           "release_cost": {k: round(v, 2) for k, v in timings.items()}}
    log(f"scale: {out}")
    return out


# -- 6. cold start ----------------------------------------------------------------------------------------
class Blackhole:
    """A listener whose accept queue is full: new connections get no SYN-ACK (like a dropped
    route), so a client waits for its connect timeout."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.2)

    def close(self) -> None:
        for s in self.fillers + [self.sock]:
            s.close()


def cold_start(b: Bench) -> dict:
    app_id = b.new_app({"k": "warm"})
    cache_dir = b.work / "cold-cache"
    with Config(app_id=app_id, server=b.apollo.url, cache_dir=cache_dir, store="memory") as warm:
        warm.get("k")
    out = {}
    hole = Blackhole()
    try:
        for name, url in (("refused", f"http://127.0.0.1:{free_port()}"),
                          ("blackholed", f"http://127.0.0.1:{hole.port}")):
            cfg = Config(app_id=app_id, server=url, cache_dir=cache_dir, store="memory")
            start = time.monotonic()
            value = cfg.get("k")
            took = time.monotonic() - start
            cfg.stop()
            out[name] = {"first_get_ms": round(took * 1000, 1), "value": value,
                         "connect_timeout_ms": cfg.settings.connect_timeout * 1000}
    finally:
        hole.close()
    log(f"cold start: {out}")
    return out


# -- 7. reload under load ---
class RecordingLoad:
    """Client threads (each calls run) on 127.0.0.1, one connection a request; records when each
    success completed and every failure. Bounded: 120 s at most, or until told to stop."""

    def __init__(self, url: str):
        self.url = url
        self.stop = threading.Event()
        self.done: List[float] = []
        self.errors: List[str] = []
        self._lock = threading.Lock()

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                r = requests.get(self.url + "/", timeout=10, headers={"Connection": "close"})
                error = None if r.status_code == 200 else f"HTTP {r.status_code}"
            except requests.RequestException as exc:
                error = type(exc).__name__
            with self._lock:
                if error is None:
                    self.done.append(time.monotonic())
                else:
                    self.errors.append(error)


# ------------------------------------------------------------------------------
def change_under_load(b: Bench, server: ServerProcess, app_id: str,
                      done: Callable[[Dict[int, dict], Dict[int, dict]], bool]) -> dict:
    """8 client threads on ``server``; after 2 s db.url changes; until ``done(before, now)``
    (every worker's answer) or a bound: requests, failures, the longest gap between two
    answers from 1 s before the change, and when it was done."""
    load = RecordingLoad(server.url)
    before = every_worker(server.url, 4)
    now = before
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(load.run) for _ in range(8)]
        time.sleep(2)
        triggered = time.monotonic()
        b.apollo.state.publish(app_id, "default", "application", {"k": "v0", "db.url": "pg://b"})
        finished = None
        while time.monotonic() < triggered + (60 if not b.quick else 30):
            try:
                now = every_worker(server.url, 4, timeout=1)
                if done(before, now):
                    finished = time.monotonic()
                    break
            except AssertionError:
                pass
        time.sleep(1)
        load.stop.set()
        for f in futures:
            f.result()
    window = sorted(t for t in load.done if t >= triggered - 1)
    gaps = [t2 - t1 for t1, t2 in zip(window, window[1:])]
    return {"requests": len(load.done), "failed": len(load.errors),
            "longest_gap_ms": round(max(gaps) * 1000, 1) if gaps else None,
            "done_s": round(finished - triggered, 2) if finished else None,
            "same_workers": set(now) == set(before), "errors": sorted(set(load.errors))[:5]}


def reload_under_load(b: Bench) -> dict:
    out = {}
    for mode in ("chain (lazy-apps)", "graceful (prefork)"):
        app_id = b.new_app({"k": "v0", "db.url": "pg://a"})
        fifo = b.work / f"{app_id}.fifo"
        extra = ["--master-fifo", str(fifo)]
        if mode.startswith("chain"):
            extra += ["--lazy-apps", "--shared-import", "hotconf.integrations.uwsgi"]
        env = {"BENCH_RELOAD_ON": "db.*"}
        server = b.uwsgi("hotconf", app_id, 4, extra=extra, env=env, mule=False)
        try:
            r = change_under_load(b, server, app_id,
                                  lambda before, now: not set(now) & set(before))
            out[mode] = {**r, "reload_done_s": r["done_s"]}
        finally:
            server.stop()
        log(f"reload {mode}: {out[mode]}")
    return out


# -- 9. rebuild instead of restart ----------------------------------------------------------------
def rebuild(b: Bench) -> dict:
    """Reads through a resource handle and a bound model next to cfg.get and dict.get (one
    plain process); then the request gap under load while db.url changes, when the connection
    is a cfg.resource (rebuilt in each worker) and when it is built at import and reload_on
    reloads uWSGI gracefully, in the same run."""
    n = 20_000 if b.quick else 200_000
    app_id = b.new_app({"k": "v0", "db.url": "pg://a", "limits.timeout": "2.5"})
    script = (f"import json, os, sys; sys.path.insert(0, {str(APPS)!r}); "
              f"import hotconf_app as a, common; t = {{'k': 'v'}}; "
              f"print(json.dumps({{'dict_get_ns': common.ns_per_call(lambda: t.get('k'), {n}), "
              f"'cfg_get_ns': common.ns_per_call(lambda: a.cfg.get('k'), {n}), "
              f"'resource_ns': common.ns_per_call(lambda: a.conn(), {n}), "
              f"'model_field_ns': common.ns_per_call(lambda: a.limits.timeout, {n})}}), "
              f"flush=True); os._exit(0)")
    env = {**os.environ, "APP_ID": app_id, "APOLLO_META": b.apollo.url, "BENCH_REBUILD": "1",
           "APOLLO_CACHE_DIR": str(b.work / f"plain-{app_id}")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=env, cwd=str(APPS))
    out: dict = {"reads": json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
                 else {"error": proc.stderr.strip().splitlines()[-1:]}, "change": {}}
    log(f"rebuild reads: {out['reads']}")
    for mode, env in (("resource rebuild", {"BENCH_REBUILD": "1"}),
                      ("graceful reload", {"BENCH_RELOAD_ON": "db.*"})):
        app_id = b.new_app({"k": "v0", "db.url": "pg://a"})
        server = b.uwsgi("hotconf", app_id, 4, env=env, mule=False)
        try:
            out["change"][mode] = change_under_load(
                b, server, app_id,
                lambda before, now: all(a["db"] == "pg://b" for a in now.values()))
        finally:
            server.stop()
        log(f"rebuild, {mode}: {out['change'][mode]}")
    return out


# -- 8. poller takeover ----------------------------------------------------------------------------
def settle(b: Bench, server: ServerProcess, workers: int, value: str, timeout: float = 30,
           mule: bool = False) -> None:
    """Every worker (a respawned one included) serves ``value`` and one long poll is held (by
    the mule, with one: a worker only stands in while it is down)."""
    answers = every_worker(server.url, workers, want=lambda a: a["value"] == value,
                           timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = poller_pid(server.app_id, b.apollo.url, server.cache_dir)
        open_polls = b.apollo.state.stats()["long_polls_open_by_app"].get(server.app_id, 0)
        if pid is not None and pid_alive(pid) and open_polls == 1 and not (
                mule and pid in answers):
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"no single poller after {timeout} s (see {server.log_path})")
    # A random pause: the kill lands at a random phase of uWSGI's master cycle (it notices a
    # dead process about once a second, and respawns it).
    time.sleep(random.uniform(0.5, 1.5))


def one_takeover(b: Bench, server: ServerProcess, workers: int, value: str) -> dict:
    """SIGKILL the host's poller, publish ``value`` right after, and time the first poll of
    the next poller, the moment one is held again, the workers that survived swapping to
    ``value`` (their swap logs) and every worker serving it (a respawned one included)."""
    app_id = server.app_id
    victim = poller_pid(app_id, b.apollo.url, server.cache_dir)
    if victim is None or victim == server.proc.pid or victim not in session_pids(server.proc.pid):
        raise AssertionError(f"the poller {victim} is not one of this server's processes")
    survivors = server.worker_pids - {victim}
    reached: Dict[str, float] = {}

    def watch() -> None:
        try:
            every_worker(server.url, workers, want=lambda a: a["value"] == value, timeout=15)
            reached["at"] = time.monotonic()
        except AssertionError:
            pass

    killed = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    b.apollo.state.publish(app_id, "default", "application", {"k": value})
    published = time.monotonic()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    first = held = successor = None
    while time.monotonic() < killed + 15 and held is None:
        polls = b.polls.polls_since(app_id, killed)
        first = polls[0][0] if polls else None
        held = min((r[1] for r in polls if r[1] is not None), default=None)
        time.sleep(0.001)
    if held is not None:
        successor = poller_pid(app_id, b.apollo.url, server.cache_dir)  # who holds it now
    mule_back = None
    if victim not in server.worker_pids:  # the mule: it takes the role back once respawned
        while time.monotonic() < killed + 15 and mule_back is None:
            pid = poller_pid(app_id, b.apollo.url, server.cache_dir)
            if pid is not None and pid != victim and pid not in server.worker_pids:
                mule_back = time.monotonic()
            time.sleep(0.002)
    watcher.join(20)
    swapped: Dict[int, float] = {}
    for pid, _, at in swaps(server.swap_log):
        if pid in survivors and at >= killed:
            swapped.setdefault(pid, at)
    return {"victim": victim, "successor": successor,
            "successor_was": ("nobody" if successor is None else
                              "a surviving worker" if successor in server.worker_pids else
                              "the respawned worker" if victim in server.worker_pids else
                              "the respawned mule"),
            "first_poll_ms": None if first is None else round((first - killed) * 1000, 1),
            "held_ms": None if held is None else round((held - killed) * 1000, 1),
            "mule_back_ms": None if mule_back is None else round((mule_back - killed) * 1000, 1),
            "release_survivors_ms": (round((max(swapped.values()) - published) * 1000, 1)
                                     if len(swapped) == len(survivors) else None),
            "release_all_ms": (round((reached["at"] - published) * 1000, 1) if "at" in reached
                               else None)}


def spread_ms(values: List[Optional[float]]) -> Dict[str, Optional[float]]:
    got = [v for v in values if v is not None]
    if not got:
        return {"n": 0}
    return {"n": len(got), "median_ms": round(statistics.median(got), 1),
            "p90_ms": round(pct(got, 0.9), 1), "max_ms": round(max(got), 1)}


def takeover(b: Bench) -> dict:
    """Kill the poller (no mule: the elected worker; mule: the mule, which uWSGI respawns)
    ``repetitions`` times at 4 workers, letting things settle between two."""
    repetitions = 2 if b.quick else 10
    workers = 4
    out: dict = {}
    for client, victim in ((NO_MULE, "the poller worker"), ("hotconf", "the mule")):
        app_id = b.new_app({"k": "t0"})
        server = b.uwsgi(client, app_id, workers)
        rows = []
        try:
            time.sleep(STAND_IN_GRACE)  # with a mule, workers stand by once this has passed
            for i in range(1, repetitions + 1):
                settle(b, server, workers, f"t{i - 1}", mule=client == "hotconf")
                server.worker_pids = {p for p in server.worker_pids if pid_alive(p)} | set(
                    every_worker(server.url, workers))
                rows.append(one_takeover(b, server, workers, f"t{i}"))
                log(f"takeover {client} #{i}: {rows[-1]}")
            settle(b, server, workers, f"t{repetitions}",  # the last one recovered too
                   mule=client == "hotconf")
        finally:
            server.stop()
        by: Dict[str, int] = {}
        for r in rows:
            by[r["successor_was"]] = by.get(r["successor_was"], 0) + 1
        out[f"{client} {workers}w"] = {
            "killed": victim, "repetitions": repetitions,
            "first_poll": spread_ms([r["first_poll_ms"] for r in rows]),
            "held": spread_ms([r["held_ms"] for r in rows]),
            "release_survivors": spread_ms([r["release_survivors_ms"] for r in rows]),
            "release_all": spread_ms([r["release_all_ms"] for r in rows]),
            "mule_back": spread_ms([r["mule_back_ms"] for r in rows]),
            "releases_reached_all": sum(r["release_all_ms"] is not None for r in rows),
            "successor_was": by}
        log(f"takeover {client}: {out[f'{client} {workers}w']}")
    return out


# -- report --------------------------------------------------------------------------------------------
def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python "
            f"{platform.python_version()}")


LABELS = {"hotconf": "hotconf (mule)", NO_MULE: "hotconf (no mule)"}
ORDER = ["floor", "baseline", "hotconf", NO_MULE, *PEERS]


def label(client: str) -> str:
    return LABELS.get(client, client)


def by_client(key: str) -> tuple:
    """Sort key of "client Nw ..." figures: worker count, then the rest, then the client."""
    client, _, rest = key.partition(" ")
    words = rest.split()
    workers = int(words[0][:-1]) if words and words[0][:-1].isdigit() else 0
    return workers, words[1:], ORDER.index(client) if client in ORDER else len(ORDER)


def plus(value) -> str:
    return f"{value:+}" if isinstance(value, (int, float)) else "?"


def spread(r: dict) -> str:
    return (f"median {r['median_ms']} ms, p90 {r['p90_ms']} ms, max {r['max_ms']} ms"
            if r.get("n") else "none")


def brief(r: dict) -> str:
    return f"{r['median_ms']}/{r['p90_ms']}/{r['max_ms']} ms" if r.get("n") else "none"


def table(results: dict) -> str:
    rows = []
    rc = results.get("read_cost", {})
    for where in ("plain", "uwsgi"):
        for client, r in rc.get(where, {}).items():
            if "client_get_ns" in r:
                ratio = r["client_get_ns"] / r["dict_get_ns"]
                extra = (f"; file read {r['file_read_ns'] / r['client_get_ns']:.0f}x slower"
                         if r.get("file_read_ns") else "")
                rows.append(f"read cost ({where}) | {client} | {r['client_get_ns']:.0f} ns | "
                            f"{ratio:.1f}x dict.get ({r['dict_get_ns']:.0f} ns){extra}")
    prop = dict(results.get("propagation", {}))
    floor = prop.pop("floor", None)
    if floor:
        rows.append(f"propagation floor | 1 plain process, no server | p50 {floor.get('p50_ms')} "
                    f"ms | p99 {floor.get('p99_ms')} ms, max {floor.get('max_ms')} ms "
                    f"({floor.get('n')} releases{first_of(floor)})")
    for key in sorted(prop, key=by_client):
        r = prop[key]
        client, _, rest = key.partition(" ")
        vs = f" = {r['p99_over_floor']}x floor" if "p99_over_floor" in r else ""
        rows.append(f"propagation {rest} | {label(client)} | p50 {r.get('p50_ms')} ms | p99 "
                    f"{r.get('p99_ms')} ms{vs}, max {r.get('max_ms')} ms ({r.get('n')} releases"
                    f"{first_of(r)})")
    for key, r in results.get("connections", {}).items():
        rows.append(f"connections | {key} | {r['long_polls']} long poll(s) | per release: "
                    f"{r['per_release']['notifications']} notification answers, "
                    f"{r['per_release']['configs']} /configs")
    im = results.get("idle_memory", {})
    for count, clients in sorted(im.get("idle", {}).items(), key=lambda kv: int(kv[0][:-1])):
        for client in sorted(clients, key=lambda c: ORDER.index(c) if c in ORDER else 99):
            r = clients[client]
            cpu_vs = (f" ({plus(r['added_cpu_percent'])} vs baseline)"
                      if "added_cpu_percent" in r else "")
            wake_vs = (f" ({plus(r['added_wakeups_per_s'])} vs baseline)"
                       if "added_wakeups_per_s" in r else "")
            rows.append(f"idle {im['idle_seconds']} s, {count[:-1]} workers | {label(client)} | "
                        f"{r['cpu_percent_of_core']}% of a core{cpu_vs} | {r['wakeups_per_s']} "
                        f"wakeups/s{wake_vs}, {r['threads']} threads")
    memory = dict(im.get("memory", {}))
    workers = memory.pop("workers", None)
    for client in sorted(memory, key=lambda c: ORDER.index(c) if c in ORDER else 99):
        r = memory[client]
        mb = im.get("config_bytes", 0) / 1e6
        vs = (f" ({plus(r['added_pss_kb_per_worker'])} kB vs baseline)"
              if "added_pss_kb_per_worker" in r else "")
        other = (f"; mule PSS {r['other_pss_kb']} kB, RSS {r['other_rss_kb']} kB"
                 if "other_pss_kb" in r else "")
        server_vs = (f" ({plus(r['added_server_pss_kb'])} kB)" if "added_server_pss_kb" in r
                     else "")
        rows.append(f"memory, {mb:g} MB config, {workers} workers | {label(client)} | PSS "
                    f"{r['pss_kb']} kB per worker{vs} | RSS {r['rss_kb']} kB per worker; whole "
                    f"server PSS {r['server_pss_kb']} kB{server_vs}{other}")
    sc = results.get("scale")
    if sc:
        for key, run in sc.get("runs", {}).items():
            client, _, workers_text = key.partition(" ")
            sm, big = run["small"], run["big"]
            rows.append(f"scale {workers_text}: 1x{sc['small_keys']} vs {sc['namespaces']}x"
                        f"{sc['keys_each']} keys ({sc['snapshot_bytes']} B) | {label(client)} | "
                        f"p99 {sm.get('p99_ms')} -> {big.get('p99_ms')} ms = "
                        f"{run.get('ratio_p99')}x | p50 {sm.get('p50_ms')} -> {big.get('p50_ms')}"
                        f" ms ({big.get('n')} releases each)")
        rows.append(f"scale: one release of {sc['snapshot_bytes']} B | hotconf, one process | "
                    f"{sc['release_cost'].get('reader_swap_ms')} ms reader swap | "
                    f"{sc['release_cost']}")
    for name, r in results.get("cold_start", {}).items():
        rows.append(f"cold start, Apollo {name} | hotconf | {r['first_get_ms']} ms | served "
                    f"{r['value']!r} from cache (connect timeout {r['connect_timeout_ms']:.0f} ms)")
    for mode, r in results.get("reload", {}).items():
        rows.append(f"reload under load | {mode} | {r['failed']} failed of {r['requests']} | "
                    f"longest gap {r['longest_gap_ms']} ms, done in {r['reload_done_s']} s")
    rb = results.get("rebuild", {})
    reads = rb.get("reads", {})
    if "dict_get_ns" in reads:
        base = reads["dict_get_ns"]
        rows.append(f"rebuild: reads, one process | hotconf | resource handle "
                    f"{reads['resource_ns']:.0f} ns = {reads['resource_ns'] / base:.1f}x "
                    f"dict.get; bound model field {reads['model_field_ns']:.0f} ns = "
                    f"{reads['model_field_ns'] / base:.1f}x | cfg.get {reads['cfg_get_ns']:.0f} "
                    f"ns = {reads['cfg_get_ns'] / base:.1f}x; dict.get {base:.0f} ns")
    for mode, r in rb.get("change", {}).items():
        rows.append(f"rebuild: db.url changed under load, 4 workers | {mode} | {r['failed']} "
                    f"failed of {r['requests']}, longest gap {r['longest_gap_ms']} ms | every "
                    f"worker on the new URL after {r['done_s']} s; same workers: "
                    f"{r['same_workers']}")
    for key, r in results.get("takeover", {}).items():
        client, _, workers_text = key.partition(" ")
        rows.append(f"takeover: SIGKILL {r['killed']}, {workers_text} | {label(client)} | "
                    f"poll held again: {spread(r['held'])} | release published at the kill, "
                    f"median/p90/max: surviving workers swapped {brief(r['release_survivors'])}; "
                    f"all workers, the respawned one too, {brief(r['release_all'])} "
                    f"({r['releases_reached_all']}/{r['repetitions']} reached all); "
                    "taken over by " + ", ".join(f"{who} ({n}x)" for who, n in
                                                  r["successor_was"].items()) +
                    (f"; handed back to the respawned mule after {brief(r['mule_back'])}"
                     if r.get("mule_back", {}).get("n") else ""))
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--no-peers", action="store_true", help="hotconf only")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"))
    parser.add_argument("--only", nargs="*", help="run only these measurements")
    parser.add_argument("--report", action="store_true",
                        help="only print the table (and write the .md) from --out's figures")
    args = parser.parse_args()
    if args.report:
        results = json.loads(Path(args.out).read_text())
        write_report(results, Path(args.out))
        return 0
    # SIGTERM unwinds like Ctrl-C, so every server started so far is stopped by its finally
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("benchmark stopped by SIGTERM"))
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="hotconf-bench-"))
    # hotconf's front copies in /dev/shm, as users have them, in a directory removed at the end
    shm = tempfile.mkdtemp(prefix="hotconf-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm")
                           else None)
    os.environ.setdefault("HOTCONF_SHM_DIR", shm)
    bench = Bench(args.quick, not args.no_peers, work)
    measures = {"read_cost": read_cost, "propagation": propagation, "connections": connections,
                "idle_memory": idle_and_memory, "scale": scale, "cold_start": cold_start,
                "reload": reload_under_load, "takeover": takeover, "rebuild": rebuild}
    results: dict = {"date": time.strftime("%Y-%m-%d"), "machine": machine(),
                     "quick": args.quick}
    try:
        for name, fn in measures.items():
            if args.only and name not in args.only:
                continue
            log(f"{name} ...")
            results[name] = fn(bench)
    finally:
        bench.close()
        shutil.rmtree(shm, ignore_errors=True)
    results["seconds"] = round(time.monotonic() - started)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, Path(args.out))
    return 0


def write_report(results: dict, out: Path) -> None:
    rows = table(results)
    markdown = (f"Measured {results['date']} on {results['machine']} ({results['seconds']} s)."
                "\n\n| measure | who | figure | detail |\n|---|---|---|---|\n"
                + "".join(f"| {row} |\n" for row in rows.splitlines()))
    out.with_suffix(".md").write_text(markdown)
    print("\nmeasure | who | figure | detail")
    print(rows)
    print(f"\n{results['machine']}; {results['seconds']} s; figures in {out}")


if __name__ == "__main__":
    sys.exit(main())
