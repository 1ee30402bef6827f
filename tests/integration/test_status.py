"""`hotconf status` and `hotconf metrics` against real uWSGI and gunicorn servers: every process
is a row with the release it serves; a frozen worker shows STALE (exit 5) and recovers; a killed
worker's row goes; a config service that is down shows in the poller's row, then fails the
probe. The metrics are parsed with prometheus_client's own parser."""

import json
import os
import signal
import subprocess

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import HOTCONF, free_port, wait_until
from tests.servers_harness import CACHE2, every_worker, gunicorn, pid_alive, poller_pid, uwsgi

pytestmark = pytest.mark.servers

BOUND = "3"  # --stale-after, seconds: small, so the test is quick; the bounds below are generous


def cli(env, *args):
    return subprocess.run(HOTCONF + list(args), capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def status(env):
    out = cli(env, "status", "--json", "--stale-after", BOUND)
    assert out.stdout, out.stderr
    return out.returncode, json.loads(out.stdout)


def rows(doc):
    return {p["pid"]: p for p in doc["processes"]}


def metrics(env):
    out = cli(env, "metrics", "--stale-after", BOUND)
    assert out.returncode == 0, out.stderr
    found = {}
    for family in text_string_to_metric_families(out.stdout):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def value(found, name, **labels):
    return next(v for lab, v in found[name] if all(lab.get(k) == w for k, w in labels.items()))


def all_serve(env, pids, key):
    code, doc = status(env)
    by_pid = rows(doc)
    return (code == 0 and set(pids) <= set(by_pid)
            and all(by_pid[p]["releases"]["application"] == key for p in pids)) and doc


def freeze_and_thaw(apollo, env, frozen, others):
    """SIGSTOP ``frozen``, publish: STALE and exit 5 within the bound; SIGCONT: current again."""
    os.kill(frozen, signal.SIGSTOP)
    try:
        key, _ = apollo.state.publish(env["APP_ID"], "default", "application",
                                      {"greeting": "while-frozen"})
        def frozen_is_stale():
            code, doc = status(env)
            return code == 5 and rows(doc).get(frozen, {}).get("stale")

        wait_until(frozen_is_stale, timeout=20, interval=0.5,
                   message="the frozen worker to show STALE, exit 5")
        code, doc = status(env)
        assert code == 5 and rows(doc)[frozen]["stale"]
        assert all(rows(doc)[p]["releases"]["application"] == key and not rows(doc)[p]["stale"]
                   for p in others)
        plain = cli(env, "status", "--stale-after", BOUND)
        assert plain.returncode == 5
        line = next(s for s in plain.stdout.splitlines() if s.strip().startswith(str(frozen)))
        assert "STALE" in line
        found = metrics(env)
        assert value(found, "hotconf_stale_processes") == 1
        served = {lab["release_key"] for lab, v in found["hotconf_release_info"] if v == 1}
        assert key in served and len(served) == 2  # the new release and the frozen one's
    finally:
        os.kill(frozen, signal.SIGCONT)
    wait_until(lambda: all_serve(env, [frozen, *others], key), timeout=20, interval=0.5,
               message="the thawed worker to catch up, exit 0")
    return key


def test_uwsgi_status_rows_staleness_and_metrics(apollo, app_env, tmp_path):
    env = {**app_env, "HOTCONF_POLLER": "mule"}
    with uwsgi(free_port(), tmp_path, env, "--cache2", CACHE2, "--mule=hotconf_mule.py") as server:
        workers = sorted(every_worker(server.url, 4, want=lambda a: a["greeting"] == "hello"))
        mule = wait_until(lambda: (p := poller_pid(env["APP_ID"], apollo.url, tmp_path / "c"))
                          and p not in workers and p, message="the mule to poll")
        key, _ = apollo.state.publish(env["APP_ID"], "default", "application",
                                      {"greeting": "second"})
        doc = wait_until(lambda: all_serve(env, [*workers, mule], key), timeout=20,
                         interval=0.3, message="every row to show the new release")
        by_pid = rows(doc)
        assert set(by_pid) == {*workers, mule}  # the master never armed: not a row
        assert by_pid[mule]["role"] == "poller" and by_pid[mule]["mule"] == 1
        assert {by_pid[w]["role"] for w in workers} == {"reader"}
        assert sorted(by_pid[w]["worker"] for w in workers) == [1, 2, 3, 4]
        assert doc["poller"]["pid"] == mule and doc["poller"]["error"] is None
        assert doc["host"]["releases"]["application"] == key

        found = metrics(env)
        assert value(found, "hotconf_processes", role="poller") == 1
        assert value(found, "hotconf_processes", role="reader") == 4
        assert value(found, "hotconf_stale_processes") == 0
        assert found["hotconf_release_info"] == [
            ({"namespace": "application", "release_key": key}, 1.0)]
        assert value(found, "hotconf_delivery_seconds_count") >= 5  # 5 processes applied it
        assert value(found, "hotconf_last_success_timestamp_seconds") > 0
        # the same, host-wide, from whichever worker answers the app's endpoint
        scraped = requests.get(server.url + "/metrics", timeout=10)
        assert scraped.status_code == 200 and scraped.headers["Content-Type"].startswith(
            "text/plain")
        families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
        assert {(s.labels["role"], s.value) for s in families["hotconf_processes"].samples} >= {
            ("poller", 1.0), ("reader", 4.0)}

        freeze_and_thaw(apollo, env, workers[0], [*workers[1:], mule])

        os.kill(workers[1], signal.SIGKILL)
        wait_until(lambda: not pid_alive(workers[1]), timeout=10)
        wait_until(lambda: workers[1] not in rows(status(env)[1]), timeout=10,
                   message="the killed worker's row to go")


def test_gunicorn_status_rows_staleness_and_a_config_service_down(apollo, app_env, tmp_path):
    with gunicorn(free_port(), tmp_path, app_env, workers=3) as server:
        workers = sorted(every_worker(server.url, 3, want=lambda a: a["greeting"] == "hello"))
        key, _ = apollo.state.publish(app_env["APP_ID"], "default", "application",
                                      {"greeting": "second"})
        doc = wait_until(lambda: all_serve(app_env, workers, key), timeout=20, interval=0.3,
                         message="every row to show the new release")
        by_pid = rows(doc)
        assert set(by_pid) == set(workers)  # the arbiter never armed
        assert sorted(p["role"] for p in by_pid.values()) == ["poller", "reader", "reader"]
        poller = next(p for p, r in by_pid.items() if r["role"] == "poller")
        assert doc["poller"]["pid"] == poller

        frozen, other = [w for w in workers if w != poller]
        freeze_and_thaw(apollo, app_env, frozen, [poller, other])

        victim = frozen
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in rows(status(app_env)[1]), timeout=10,
                   message="the killed worker's row to go")

        apollo.stop()  # the config service goes away: the poller fails, backs off, says so
        doc = wait_until(lambda: (d := status(app_env)[1])["poller"] and
                         d["poller"]["error"] and d, timeout=20, interval=0.3,
                         message="the poller's error to show")
        assert doc["poller"]["failing_since"] is not None
        assert doc["processes"] and all(not p["stale"] for p in doc["processes"])
        code, doc = wait_until(lambda: (r := status(app_env))[0] == 5 and r, timeout=30,
                               interval=0.5, message="exit 5 once failing past the bound")
        assert doc["poller"]["failing"] and any("failing" in p for p in doc["problems"])
        found = metrics(app_env)
        assert value(found, "hotconf_poller_failing") == 1
        assert sum(v for _, v in found["hotconf_poll_errors_total"]) >= 1
        plain = cli(app_env, "status", "--stale-after", BOUND)
        assert plain.returncode == 5 and "FAILING" in plain.stdout
