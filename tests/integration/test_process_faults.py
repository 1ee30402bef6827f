"""Process faults under real uWSGI: the poller SIGKILLed again and again while releases stream
in. No worker ever goes back to an older release, and every worker ends on the last one."""

import os
import signal
import threading
import time

import pytest

from tests.helpers import free_port, wait_until
from tests.servers_harness import CACHE2, ask, every_worker, pid_alive, poller_pid, uwsgi

pytestmark = pytest.mark.servers


def test_poller_killed_repeatedly_during_releases(apollo, app_env, tmp_path):
    app_id, cache = app_env["APP_ID"], tmp_path / "c"
    apollo.state.publish(app_id, "default", "application", {"greeting": "0"})
    with uwsgi(free_port(), tmp_path, app_env, "--cache2", CACHE2) as server:
        every_worker(server.url, 4, want=lambda a: a["greeting"] == "0")
        served = {}  # pid -> [(when answered, release number)]
        stop = threading.Event()

        def watch():
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                answer = ask(server.url, sleep=0.02, timeout=5)
                if answer and answer["greeting"] is not None:
                    # a worker serves one request at a time, each >= 20 ms: answer times order
                    # what it served
                    served.setdefault(answer["pid"], []).append(
                        (time.monotonic(), int(answer["greeting"])))

        watchers = [threading.Thread(target=watch) for _ in range(4)]
        for t in watchers:
            t.start()
        kills = 0
        try:
            release = 0
            for _round in range(4):
                for _ in range(5):
                    release += 1
                    apollo.state.publish(app_id, "default", "application",
                                         {"greeting": str(release)})
                    time.sleep(0.15)
                victim = poller_pid(app_id, apollo.url, cache)
                if victim:
                    os.kill(victim, signal.SIGKILL)
                    kills += 1
                    wait_until(lambda v=victim: not pid_alive(v), timeout=5)
                    wait_until(lambda v=victim: (p := poller_pid(app_id, apollo.url, cache))
                               and p != v, timeout=10, message="a new poller")
        finally:
            stop.set()
            for t in watchers:
                t.join(10)
        assert kills == 4
        every_worker(server.url, 4, want=lambda a: a["greeting"] == str(release), timeout=20)
        assert len(served) >= 4
        for pid, answers in served.items():
            seen = [value for _, value in sorted(answers)]
            assert seen == sorted(seen), f"worker {pid} went back to an older release: {seen}"


def test_workers_killed_mid_swap_and_harakiri(apollo, app_env, tmp_path):
    """Readers SIGKILLed while releases arrive, and a worker stuck past harakiri: uWSGI respawns
    them, and every worker, old or new, ends on the last release."""
    app_id, cache = app_env["APP_ID"], tmp_path / "c"
    apollo.state.publish(app_id, "default", "application", {"greeting": "0"})
    with uwsgi(free_port(), tmp_path, app_env, "--cache2", CACHE2, "--harakiri", "2") as server:
        answers = every_worker(server.url, 4, want=lambda a: a["greeting"] == "0")
        poller = poller_pid(app_id, apollo.url, cache)
        readers = [pid for pid in answers if pid != poller]
        release = 0
        for victim in readers[:2]:
            for _ in range(3):
                release += 1
                apollo.state.publish(app_id, "default", "application", {"greeting": str(release)})
            os.kill(victim, signal.SIGKILL)  # in the middle of the swaps these releases cause
        # a request that outlives harakiri (2 s): uWSGI kills that worker
        stuck = threading.Thread(target=ask, args=(server.url, 5.0, 10))
        stuck.start()
        release += 1
        apollo.state.publish(app_id, "default", "application", {"greeting": str(release)})
        stuck.join(15)
        wait_until(lambda: "HARAKIRI" in server.log(tail=None), timeout=10, message="harakiri")
        every_worker(server.url, 4, want=lambda a: a["greeting"] == str(release), timeout=20)


def test_releases_during_a_graceful_reload(apollo, app_env, tmp_path):
    """SIGHUP (a full reload: the uWSGI cache is wiped, every process restarts) while releases
    keep coming: afterwards every worker serves the last one."""
    pidfile = tmp_path / "uwsgi.pid"
    apollo.state.publish(app_env["APP_ID"], "default", "application", {"greeting": "0"})
    with uwsgi(free_port(), tmp_path, app_env, "--cache2", CACHE2, "--pidfile",
               str(pidfile)) as server:
        every_worker(server.url, 4, want=lambda a: a["greeting"] == "0")
        master = int(pidfile.read_text())
        release = 0
        for i in range(12):
            release += 1
            apollo.state.publish(app_env["APP_ID"], "default", "application",
                                 {"greeting": str(release)})
            if i == 3:
                os.kill(master, signal.SIGHUP)
            time.sleep(0.2)
        every_worker(server.url, 4, want=lambda a: a["greeting"] == str(release), timeout=30)
