"""`make bench`: hotconf side by side with the Python Apollo clients, in one run, on this machine.

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
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from hotconf import Config  # noqa: E402
from hotconf.devserver import DevServer  # noqa: E402
from hotconf.snapshot import NamespaceSnapshot, Snapshot, diff  # noqa: E402
from tests.servers_harness import (  # noqa: E402
    UWSGI,
    ServerProcess,
    cpu_seconds,
    every_worker,
    session_pids,
)

APPS = ROOT / "benchmarks" / "apps"
VENVS = ROOT / "benchmarks" / ".venvs"
RESULTS = ROOT / "benchmarks" / "results"
PEERS = {"acc": "apollo-config-client==0.1.2", "pys": "pyapollos==0.1.5"}
HOTCONF_CACHE2 = "name=hotconf,items=16,blocksize=4194304"


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


class Bench:
    def __init__(self, quick: bool, peers: bool, work: Path):
        self.quick, self.peers, self.work = quick, peers, work
        self.apollo = DevServer(port=0, hold_seconds=60).start()
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

    def uwsgi(self, client: str, app_id: str, workers: int, extra=(), env=None,
              mule: bool = True) -> ServerProcess:
        port = free_port()
        tag = f"{client}-{app_id}-{workers}"
        swap_log = self.work / f"{tag}.swaps"
        base_env = {"APP_ID": app_id, "APOLLO_META": self.apollo.url,
                    "APOLLO_CONFIG": self.apollo.url, "SWAP_LOG": str(swap_log),
                    "APOLLO_CACHE_DIR": str(self.work / f"cache-{tag}"),
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
        server.swap_log = swap_log
        server.start(timeout=90)
        try:
            every_worker(server.url, workers, timeout=60)
        except BaseException:
            server.stop()  # a server that never got ready is stopped here: nobody else will
            raise
        return server

    def close(self) -> None:
        self.apollo.stop()


def swaps(path: Path) -> List[tuple]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    return [(int(p), r, float(t)) for p, r, t in (line.split() for line in lines if line)]


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


def measure_propagation(b: Bench, server: ServerProcess, app_id: str, workers: int,
                        releases: int, make_values: Callable[[int], dict],
                        namespace: str = "application") -> List[float]:
    delays = []
    for i in range(releases):
        before = len(swaps(server.swap_log))
        b.apollo.state.publish(app_id, "default", namespace, make_values(i))
        accepted = time.monotonic()
        deadline = accepted + 10
        while time.monotonic() < deadline:
            new = swaps(server.swap_log)[before:]
            if len({pid for pid, _, _ in new}) >= workers:
                delays.append(max(t for _, _, t in new) - accepted)
                break
            time.sleep(0.002)
        else:
            delays.append(float("inf"))
        time.sleep(0.05)
    return delays


def propagation(b: Bench) -> dict:
    releases = 5 if b.quick else 50
    counts = [2] if b.quick else [4, 8]
    out: dict = {}
    clients = ["hotconf"] + (list(PEERS) if b.peers else [])
    for client in clients:
        for workers in counts:
            for loaded in (False, True):
                if client != "hotconf" and workers != counts[0]:
                    continue
                app_id = b.new_app()
                server = b.uwsgi(client, app_id, workers, env={"BENCH_DETECT": "1"})
                load = LightLoad(server.url) if loaded else None
                try:
                    time.sleep(0.5)
                    delays = measure_propagation(b, server, app_id, workers, releases,
                                                 lambda i: {"k": f"v{i + 1}"})
                finally:
                    if load:
                        load.close()
                    server.stop()
                key = f"{client} {workers}w {'load' if loaded else 'idle'}"
                out[key] = summary_ms(delays)
                log(f"propagation {key}: {out[key]}")
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
                time.sleep(1.0)
                polls = b.apollo.state.stats()["long_polls_open_by_app"].get(app_id, 0)
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
def worker_memory(server: ServerProcess) -> Dict[str, float]:
    rss, pss = [], []
    for pid in session_pids(server.proc.pid):
        if pid == server.proc.pid:
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        if b"uwsgi" not in cmd:
            continue
        rss.append(int(status.split("VmRSS:")[1].split()[0]))
        pss.append(int(rollup.split("Pss:")[1].split()[0]))
    return {"rss_kb": round(statistics.mean(rss)), "pss_kb": round(statistics.mean(pss)),
            "processes": len(rss)}


def big_properties(total_bytes: int) -> dict:
    keys = max(1, total_bytes // 110)
    return {f"key.{i:05d}": "x" * 96 for i in range(keys)} | {"k": "v0"}


def idle_and_memory(b: Bench) -> dict:
    seconds = 2 if b.quick else 60
    size = 100_000 if b.quick else 1_000_000
    out: dict = {"idle_seconds": seconds, "config_bytes": size}
    servers = {}
    try:
        for client in ["baseline", "hotconf"] + (list(PEERS) if b.peers else []):
            app_id = b.new_app(big_properties(size))
            servers[client] = b.uwsgi(client, app_id, 4)
        time.sleep(2)
        start = {c: cpu_seconds(session_pids(s.proc.pid)) for c, s in servers.items()}
        time.sleep(seconds)
        for client, server in servers.items():
            used = cpu_seconds(session_pids(server.proc.pid)) - start[client]
            out[client] = {"cpu_seconds": round(used, 3),
                           "cpu_percent_of_core": round(100 * used / seconds, 3),
                           **worker_memory(server)}
        base = out["baseline"]
        for client in servers:
            if client != "baseline":
                out[client]["added_rss_kb_per_process"] = out[client]["rss_kb"] - base["rss_kb"]
                out[client]["added_pss_kb_per_process"] = out[client]["pss_kb"] - base["pss_kb"]
                out[client]["added_cpu_percent"] = round(
                    out[client]["cpu_percent_of_core"] - base["cpu_percent_of_core"], 3)
    finally:
        for server in servers.values():
            server.stop()
    log(f"idle/memory: {out}")
    return out


# -- 5. scale -------------------------------------------------------------------------------------------
def scale(b: Bench) -> dict:
    namespaces = 4 if b.quick else 20
    keys = 50 if b.quick else 500
    releases = 5 if b.quick else 30
    names = [f"ns{i:02d}" for i in range(namespaces)]
    app_id = b.new_app()
    for name in names:
        b.apollo.state.publish(app_id, "default", name,
                               {"k": "v0", **{f"key.{j:03d}": "y" * 96 for j in range(keys)}})
    server = b.uwsgi("hotconf", app_id, 4, env={"BENCH_NAMESPACES": ",".join(names)})
    try:
        time.sleep(0.5)

        def one_key(i: int) -> dict:
            return {"k": f"v{i + 1}", **{f"key.{j:03d}": "y" * 96 for j in range(keys)}}

        delays = measure_propagation(b, server, app_id, 4, releases, one_key, names[0])
    finally:
        server.stop()
    # The cost of one release, in one process, on the same data.
    base = {n: NamespaceSnapshot(n, {f"key.{j:03d}": "y" * 96 for j in range(keys)} | {"k": "v0"},
                                 "r0") for n in names}
    old = Snapshot(app_id, "default", base, 1)
    new = old.replace({names[0]: NamespaceSnapshot(names[0], dict(base[names[0]]) | {"k": "v1"},
                                                   "r1")})
    timings = {}
    start = time.perf_counter()
    diff(old, new)
    timings["diff_ms"] = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    data = json.dumps(new.to_dict(), separators=(",", ":"))
    path = b.work / "scale.json"
    path.write_text(data)
    timings["store_write_ms"] = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    Snapshot.from_dict(json.loads(path.read_text()), previous=old)
    timings["reader_swap_ms"] = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    Snapshot.from_dict(json.loads(path.read_text()))
    timings["reader_full_parse_ms"] = (time.perf_counter() - start) * 1000
    out = {"namespaces": namespaces, "keys_each": keys, "snapshot_bytes": len(data),
           "propagation": summary_ms(delays),
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
        load = RecordingLoad(server.url)
        try:
            old = set(every_worker(server.url, 4))
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                futures = [pool.submit(load.run) for _ in range(8)]
                time.sleep(2)
                triggered = time.monotonic()
                b.apollo.state.publish(app_id, "default", "application",
                                       {"k": "v0", "db.url": "pg://b"})
                deadline = triggered + (60 if not b.quick else 30)
                while time.monotonic() < deadline:
                    try:
                        now = every_worker(server.url, 4, timeout=1)
                        if not set(now) & old:
                            break
                    except AssertionError:
                        pass
                finished = time.monotonic()
                time.sleep(1)
                load.stop.set()
                for f in futures:
                    f.result()
            window = sorted(t for t in load.done if t >= triggered - 1)
            gaps = [b2 - a2 for a2, b2 in zip(window, window[1:])]
            out[mode] = {"requests": len(load.done), "failed": len(load.errors),
                         "longest_gap_ms": round(max(gaps) * 1000, 1) if gaps else None,
                         "reload_done_s": round(finished - triggered, 1),
                         "errors": sorted(set(load.errors))[:5]}
        finally:
            server.stop()
        log(f"reload {mode}: {out[mode]}")
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
    for key, r in results.get("propagation", {}).items():
        rows.append(f"propagation | {key} | p50 {r.get('p50_ms')} ms | p99 {r.get('p99_ms')} ms,"
                    f" max {r.get('max_ms')} ms ({r.get('n')} releases)")
    for key, r in results.get("connections", {}).items():
        rows.append(f"connections | {key} | {r['long_polls']} long poll(s) | per release: "
                    f"{r['per_release']['notifications']} notification answers, "
                    f"{r['per_release']['configs']} /configs")
    idle = results.get("idle_memory", {})
    for client, r in idle.items():
        if isinstance(r, dict) and "cpu_seconds" in r:
            rows.append(f"idle {idle['idle_seconds']} s, 4 workers | {client} | "
                        f"{r['cpu_percent_of_core']}% of a core | RSS {r['rss_kb']} kB, PSS "
                        f"{r['pss_kb']} kB per process"
                        + (f" (+{r['added_rss_kb_per_process']} kB RSS, "
                           f"+{r['added_pss_kb_per_process']} kB PSS vs baseline)"
                           if "added_rss_kb_per_process" in r else ""))
    sc = results.get("scale")
    if sc:
        p = sc["propagation"]
        rows.append(f"scale {sc['namespaces']}x{sc['keys_each']} ({sc['snapshot_bytes']} B) | "
                    f"hotconf 4w | p50 {p.get('p50_ms')} ms | p99 {p.get('p99_ms')} ms; one "
                    f"release: {sc['release_cost']}")
    for name, r in results.get("cold_start", {}).items():
        rows.append(f"cold start, Apollo {name} | hotconf | {r['first_get_ms']} ms | served "
                    f"{r['value']!r} from cache (connect timeout {r['connect_timeout_ms']:.0f} ms)")
    for mode, r in results.get("reload", {}).items():
        rows.append(f"reload under load | {mode} | {r['failed']} failed of {r['requests']} | "
                    f"longest gap {r['longest_gap_ms']} ms, done in {r['reload_done_s']} s")
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
    bench = Bench(args.quick, not args.no_peers, work)
    measures = {"read_cost": read_cost, "propagation": propagation, "connections": connections,
                "idle_memory": idle_and_memory, "scale": scale, "cold_start": cold_start,
                "reload": reload_under_load}
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
