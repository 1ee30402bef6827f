"""reload_on under real uWSGI (prefork and lazy-apps) and gunicorn: one reload per settled
change of a connection-level key, none for other keys, and no failed request under load."""

import concurrent.futures
import subprocess
import time

import pytest
import requests

from tests.helpers import HOTCONF, free_port
from tests.servers_harness import CACHE2, every_worker, gunicorn, uwsgi

pytestmark = pytest.mark.servers


def reloads(server):
    """hotconf's reload log lines: '<action> because application:db.url ... changed'."""
    return sum(1 for line in server.log(tail=None).splitlines()
               if "WARNING hotconf:" in line and "reload" in line
               and " because application:db." in line)


def publish(apollo, env, **values):
    base = {"greeting": "hello", "db.url": "pg://a"}
    apollo.state.publish(env["APP_ID"], "default", "application", {**base, **values})


def exercise_policy(apollo, env, server, workers):
    """db.url change -> one reload; another key -> none; 20 releases in 1 s -> one reload."""
    first = every_worker(server.url, workers, want=lambda a: a["db"] == "pg://a")
    assert reloads(server) == 0
    publish(apollo, env, **{"db.url": "pg://b"})
    every_worker(server.url, workers, want=lambda a: a["db"] == "pg://b", timeout=40)
    assert reloads(server) == 1, server.log()
    before = every_worker(server.url, workers, want=lambda a: a["db"] == "pg://b")
    publish(apollo, env, greeting="other key", **{"db.url": "pg://b"})
    every_worker(server.url, workers, want=lambda a: a["greeting"] == "other key")
    time.sleep(2.5)  # past the settle window: nothing may fire
    after = every_worker(server.url, workers, want=lambda a: a["greeting"] == "other key")
    assert reloads(server) == 1
    assert {a["conn"] for a in after.values()} <= {a["conn"] for a in before.values()}
    for i in range(20):  # 20 releases within one second
        publish(apollo, env, greeting="other key", **{"db.url": f"pg://burst{i}"})
        time.sleep(0.045)
    every_worker(server.url, workers, want=lambda a: a["db"] == "pg://burst19", timeout=40)
    time.sleep(1.5)
    assert reloads(server) == 2, server.log()
    assert len(first) == workers


def test_uwsgi_prefork_graceful_reload(apollo, app_env, tmp_path):
    env = {**app_env}
    publish(apollo, env)
    with uwsgi(free_port(), tmp_path, env, "--cache2", CACHE2, processes=2) as server:
        exercise_policy(apollo, env, server, 2)
        assert "graceful uWSGI reload because" in server.log(tail=None)


def test_uwsgi_lazy_apps_chain_reload(apollo, app_env, tmp_path):
    fifo = tmp_path / "master.fifo"
    publish(apollo, app_env)
    with uwsgi(free_port(), tmp_path, app_env, "--lazy-apps", "--cache2", CACHE2,
               "--shared-import", "hotconf.integrations.uwsgi", "--master-fifo", str(fifo),
               processes=2) as server:
        exercise_policy(apollo, app_env, server, 2)
        assert "uWSGI chain reload (master FIFO" in server.log(tail=None)


def test_gunicorn_hup_reload(apollo, app_env, tmp_path):
    publish(apollo, app_env)
    with gunicorn(free_port(), tmp_path, app_env, workers=2) as server:
        exercise_policy(apollo, app_env, server, 2)
        assert "gunicorn reload (SIGHUP to the arbiter) because" in server.log(tail=None)


class Load:
    """A bounded client loop on 127.0.0.1: 8 threads, stops at ``limit`` s or when told."""

    def __init__(self, url, limit=60.0):
        self.url, self.limit = url, limit
        self.ok = self.failed = 0
        self.errors = []
        self.stop = False
        self.pids = set()

    def worker(self):
        session_deadline = time.monotonic() + self.limit
        while not self.stop and time.monotonic() < session_deadline:
            try:
                r = requests.get(self.url + "/", timeout=10, headers={"Connection": "close"})
                if r.status_code == 200:
                    self.ok += 1
                    self.pids.add(r.json()["pid"])
                    continue
                self.errors.append(f"HTTP {r.status_code}")
            except requests.RequestException as exc:
                self.errors.append(type(exc).__name__)
            self.failed += 1

    def run_until(self, done, minimum=2000):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(self.worker) for _ in range(8)]
            deadline = time.monotonic() + self.limit
            while time.monotonic() < deadline and not (done() and self.ok + self.failed >= minimum):
                time.sleep(0.2)
            self.stop = True
            for f in futures:
                f.result()


def chain_under_load(apollo, env, tmp_path, trigger):
    fifo = tmp_path / "master.fifo"
    publish(apollo, env)
    with uwsgi(free_port(), tmp_path, env, "--lazy-apps", "--cache2", CACHE2, "--shared-import",
               "hotconf.integrations.uwsgi", "--master-fifo", str(fifo),
               processes=2) as server:
        old = set(every_worker(server.url, 2, want=lambda a: a["db"] == "pg://a"))
        load = Load(server.url)
        started = {}

        def done():
            if "at" not in started and load.ok > 300:
                started["at"] = time.monotonic()
                trigger(fifo)
            if "at" not in started:
                return False
            try:
                answers = every_worker(server.url, 2, timeout=0.5, want=lambda a: True)
            except AssertionError:
                return False
            return not (set(answers) & old) and all(a["db"] == "pg://b" for a in answers.values())

        load.run_until(done)
        assert load.failed == 0, load.errors[:10]
        assert load.ok >= 2000
        assert not (load.pids >= old and len(load.pids) == len(old)), "workers were not replaced"
        return server


def test_chain_reload_under_load_drops_nothing(apollo, app_env, tmp_path):
    server = chain_under_load(apollo, app_env, tmp_path,
                              lambda fifo: publish(apollo, app_env, **{"db.url": "pg://b"}))
    assert reloads(server) == 1


def test_ops_chain_reload_under_load_drops_nothing(apollo, app_env, tmp_path):
    def ops_reload(fifo):
        # this app has no reload_on: ops change the value, then reload by hand
        publish(apollo, env, **{"db.url": "pg://b"})
        out = subprocess.run(HOTCONF + ["reload", "--fifo", str(fifo), "--chain"],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr

    env = {**app_env, "RELOAD_ON": ""}
    server = chain_under_load(apollo, env, tmp_path, ops_reload)
    assert reloads(server) == 0  # the reload was the operator's, not hotconf's
