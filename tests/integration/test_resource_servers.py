"""cfg.resource under real servers (gunicorn --preload with 3 workers, uWSGI prefork with 4):
each worker builds its own object after the fork, a db.url release rebuilds it in every worker
with no server reload and no failed request under steady load, the old object is closed once
per worker after the grace, and a value the factory rejects keeps the old object everywhere,
with the error in the log and in `hotconf status`."""

import concurrent.futures
import json
import os
import subprocess
import time

import pytest
import requests

from tests.helpers import HOTCONF, free_port, wait_until
from tests.servers_harness import every_worker, gunicorn, uwsgi

pytestmark = pytest.mark.servers

GRACE = 1.0
LOAD_THREADS = 6
LOAD_MAX_REQUESTS = 6000  # bounded in count...
LOAD_MAX_SECONDS = 40.0  # ...and in time


def start(kind, tmp_path, env):
    port = free_port()
    if kind == "gunicorn":
        server = gunicorn(port, tmp_path, env, "--preload", workers=3)
        server.argv[-1] = "resource_app:app"
        return server, 3
    server = uwsgi(port, tmp_path, env, processes=4)
    server.argv[server.argv.index("flask_app:app")] = "resource_app:app"
    return server, 4


class Load:
    """Steady requests from a few threads until told to stop, bounded in count and time; every
    answer is kept."""

    def __init__(self, url):
        self.url = url
        self.answers, self.failures = [], []
        self.stopping = False
        self.pool = concurrent.futures.ThreadPoolExecutor(LOAD_THREADS)
        self.deadline = time.monotonic() + LOAD_MAX_SECONDS
        self.futures = [self.pool.submit(self._run) for _ in range(LOAD_THREADS)]

    def _run(self):
        # A connection per request: uWSGI's http-socket does no keep-alive, and a pooled
        # connection it already closed would count as a failure of the server.
        while (not self.stopping and time.monotonic() < self.deadline
               and len(self.answers) + len(self.failures) < LOAD_MAX_REQUESTS):
            try:
                r = requests.get(self.url + "/", timeout=10, headers={"Connection": "close"})
                if r.status_code == 200:
                    self.answers.append(r.json())
                else:
                    self.failures.append(f"HTTP {r.status_code}")
            except requests.RequestException as exc:
                self.failures.append(repr(exc))

    def stop(self):
        self.stopping = True
        for future in self.futures:
            future.result(timeout=LOAD_MAX_SECONDS + 20)
        self.pool.shutdown()


def closes(path):
    try:
        return [json.loads(line) for line in path.read_text().splitlines()]
    except FileNotFoundError:
        return []


def status(env):
    out = subprocess.run(HOTCONF + ["status", "--json", "--stale-after", "60"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert out.stdout, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("kind", ["gunicorn", "uwsgi"])
def test_resource_rebuilt_in_every_worker_without_a_reload(kind, apollo, app_env, tmp_path):
    close_log = tmp_path / "closes.jsonl"
    env = {**app_env, "CLOSE_LOG": str(close_log), "GRACE": str(GRACE)}
    app = env["APP_ID"]
    apollo.state.publish(app, "default", "application",
                         {"db.url": "mysql://app:pw-1@db1/app", "db.password": "pw-1",
                          "limits.timeout": "2.5"})
    server, workers = start(kind, tmp_path, env)
    with server:
        master = server.proc.pid
        before = every_worker(server.url, workers)
        # Each worker built its own connection after the fork, not the master's.
        assert len({a["conn"] for a in before.values()}) == workers
        assert all(a["conn_pid"] == pid and a["conn"] != a["at_import"]
                   for pid, a in before.items())
        assert all(a["timeout"] == 2.5 for a in before.values())

        # A db.url release under steady load: every worker rebuilds, no request fails.
        load = Load(server.url)
        try:
            wait_until(lambda: len(load.answers) >= 300, timeout=20, message="the load running")
            published = len(load.answers)
            apollo.state.publish(app, "default", "application",
                                 {"db.url": "mysql://app:pw-2@db2/app", "db.password": "pw-2",
                                  "limits.timeout": "2.5"})
            wait_until(lambda: {a["pid"] for a in load.answers[-400:] if "db2" in a["url"]}
                       >= set(before), timeout=20, message="every worker on the new object")
            wait_until(lambda: len(load.answers) - published >= 1000, timeout=30,
                       message="1,000 requests from the publish on")
        finally:
            load.stop()
        # Not one failed request from the publish through the rebuild in every worker
        assert load.failures == [] and len(load.answers) - published >= 1000
        after = {a["pid"]: a for a in load.answers if "db2" in a["url"]}
        assert set(after) == set(before), "no worker was replaced: no server reload"
        assert server.proc.poll() is None and server.proc.pid == master
        assert "reload because" not in server.log(tail=None)
        assert all(a["conn_pid"] == pid for pid, a in after.items())

        # The old objects: closed once each, by their own worker, after the grace period.
        old_ids = {a["conn"] for a in before.values()}
        wait_until(lambda: {c["id"] for c in closes(close_log)} >= old_ids, timeout=15,
                   message="every old object closed")
        time.sleep(GRACE + 0.5)
        closed = [c for c in closes(close_log) if c["id"] in old_ids]
        assert len(closed) == workers and {c["by"] for c in closed} == set(before)
        for c in closed:
            swapped_at = after[c["by"]]["built_at"]
            assert c["at"] - swapped_at >= GRACE - 0.05, c
        # The master's object (built at import) was closed, or finalized, by no worker.
        at_import = {a["at_import"] for a in before.values()}
        assert not [c for c in closes(close_log) if c["id"] in at_import]
        dels = closes(tmp_path / "closes.jsonl.dels")
        assert not [d for d in dels if d["id"] in at_import], dels

        # A db.url the factory rejects: every worker keeps the object it has.
        apollo.state.publish(app, "default", "application",
                             {"db.url": "db3-no-scheme", "db.password": "pw-3",
                              "limits.timeout": "2.5"})
        kept = every_worker(server.url, workers,
                            want=lambda a: a["config_url"] == "db3-no-scheme", timeout=20)
        assert all(a["conn"] == after[pid]["conn"] for pid, a in kept.items())

        def all_failing():
            doc = status(env)
            found = {p["pid"]: p["dependents"] for p in doc["processes"]}
            failing = {pid for pid, deps in found.items()
                       if any(d["name"] == "db" and d["error"] for d in deps)}
            return failing >= set(before) and doc

        doc = wait_until(all_failing, timeout=15, message="the error in every worker's row")
        for row in doc["processes"]:
            if row["pid"] in before:
                dep = next(d for d in row["dependents"] if d["name"] == "db")
                assert dep["failed_keys"] == ["application:db.password", "application:db.url"]
                assert "cannot parse" in dep["error"] and "pw-3" not in dep["error"]
        log = server.log(tail=None)
        assert log.count("could not be rebuilt") == workers
        assert "pw-3" not in log and "pw-2" not in log


def test_gevent_workers_build_once_under_concurrent_first_requests(apollo, app_env, tmp_path):
    """gunicorn -k gevent --preload: a slow factory (a greenlet switch while it "connects")
    and 40 concurrent first requests build one object per worker, and a release rebuilds it."""
    pytest.importorskip("gevent")
    close_log = tmp_path / "closes.jsonl"
    env = {**app_env, "CLOSE_LOG": str(close_log), "FACTORY_SLEEP": "0.3", "GRACE": "0.5"}
    app = env["APP_ID"]
    apollo.state.publish(app, "default", "application", {"db.url": "mysql://db1/app"})
    port = free_port()
    server = gunicorn(port, tmp_path, env, "-k", "gevent", "--preload", workers=2)
    server.argv[-1] = "resource_app:app"
    try:
        server.start(first_request=False)  # no request before the concurrent first ones
        answers = every_worker(server.url, 2, concurrency=40, timeout=30)
        builds = [json.loads(line) for line in
                  (tmp_path / "closes.jsonl.builds").read_text().splitlines()]
        master = [b for b in builds if b["pid"] not in answers]
        assert len(master) == 1  # the arbiter's, at import
        assert sorted(b["pid"] for b in builds if b["pid"] in answers) == sorted(answers)
        apollo.state.publish(app, "default", "application", {"db.url": "mysql://db2/app"})
        every_worker(server.url, 2, want=lambda a: a["url"] == "mysql://db2/app", timeout=20)
        wait_until(lambda: len(closes(close_log)) == 2, timeout=10, message="two closes")
        assert {c["by"] for c in closes(close_log)} == set(answers)
    finally:
        server.stop()


def test_bound_models_follow_in_preload_workers_that_read_nothing_else(apollo, app_env,
                                                                        tmp_path):
    """gunicorn --preload with no post_fork hook: a worker whose requests read only a bound
    model (an attribute, not a cfg read) is armed by the request check and follows releases."""
    env = {**app_env, "CLOSE_LOG": str(tmp_path / "closes.jsonl")}
    app = env["APP_ID"]
    apollo.state.publish(app, "default", "application",
                         {"db.url": "mysql://db1/app", "limits.timeout": "1.5"})
    port = free_port()
    server = gunicorn(port, tmp_path, env, "--preload", workers=2)
    server.argv[-1] = "resource_app:app"
    try:
        server.start(first_request=False)

        def timeouts():
            seen = {}
            for _ in range(20):
                try:
                    r = requests.get(server.url + "/limits", timeout=5,
                                     headers={"Connection": "close"}).json()
                    seen[r["pid"]] = r["timeout"]
                except requests.RequestException:
                    pass
            return seen

        wait_until(lambda: len(timeouts()) == 2, timeout=20, message="both workers")
        apollo.state.publish(app, "default", "application",
                             {"db.url": "mysql://db1/app", "limits.timeout": "9"})
        wait_until(lambda: (lambda seen: len(seen) == 2 and set(seen.values()) == {9.0})(
            timeouts()), timeout=20, message="every worker's model on the release")
    finally:
        server.stop()
