"""Real uWSGI, gunicorn and uvicorn processes against the real dev server: every worker serves
each release, and the host keeps exactly one long poll open whatever the number of workers."""

import os
import signal
import time

import pytest

from hotconf.election import PollerClaim, PollerLock
from hotconf.options import Settings
from hotconf.process.binding import STAND_IN_GRACE
from tests.helpers import free_port, wait_until
from tests.servers_harness import (
    BIN,
    CACHE2,
    SERVERS_DIR,
    ServerProcess,
    assert_one_long_poll,
    every_worker,
    gunicorn,
    idle_cpu,
    pid_alive,
    poller_pid,
    release_reaches_every_worker,
    uwsgi,
)

pytestmark = pytest.mark.servers



def assert_idle_is_quiet(server):
    """Idle, the whole server (pollers, readers, watchers) must not spin: 2 s, generous bound."""
    time.sleep(0.5)
    used = idle_cpu(server, 2.0)
    assert used < 0.3, f"the idle server used {used:.2f} CPU seconds in 2 s"


def check_every_worker_follows(apollo, env, server, workers):
    answers = every_worker(server.url, workers, want=lambda a: a["greeting"] == "hello")
    expected_at_import = "hello" if env.get("READ_AT_IMPORT", "1") == "1" else None
    assert all(a["at_import"] == expected_at_import for a in answers.values())
    assert_one_long_poll(apollo, env["APP_ID"])
    for value in ("second", "third"):
        answers = release_reaches_every_worker(apollo, env, server.url, workers, value)
    assert_one_long_poll(apollo, env["APP_ID"])
    assert_idle_is_quiet(server)
    return answers


def test_uwsgi_prefork_seed_scenario_without_mule(apollo, app_env, tmp_path):
    """module-level Config, processes = 4, enable-threads, no lazy-apps, no mule, no cache2."""
    with uwsgi(free_port(), tmp_path, app_env) as server:
        answers = check_every_worker_follows(apollo, app_env, server, 4)
        roles = sorted(a["role"] for a in answers.values())
        assert roles.count("poller") <= 1 and len(answers) == 4
        # on_change fired in the workers too (second and third release)
        every_worker(server.url, 4, want=lambda a: a["events"] >= 2)


def test_uwsgi_prefork_with_mule_and_cache(apollo, app_env, tmp_path):
    env = {**app_env, "HOTCONF_POLLER": "mule"}
    with uwsgi(free_port(), tmp_path, env, "--cache2", CACHE2, "--mule=hotconf_mule.py") as server:
        answers = check_every_worker_follows(apollo, env, server, 4)
        assert {a["role"] for a in answers.values()} == {"reader"}  # the mule polls
        assert all(a["signal"] is not None for a in answers.values())  # pushed by uWSGI signal
        pid = poller_pid(env["APP_ID"], apollo.url, tmp_path / "c")
        assert pid is not None and pid not in answers


def test_uwsgi_mule_first_request_when_nothing_read_before_fork(apollo, app_env, tmp_path):
    """No read at import: no cache file before the fork. A worker's first request waits for the
    mule's first load (bounded), then answers: no error, no multi-second stall."""
    env = {**app_env, "HOTCONF_POLLER": "mule", "READ_AT_IMPORT": "0"}
    with uwsgi(free_port(), tmp_path, env, "--cache2", CACHE2, "--mule=hotconf_mule.py") as server:
        assert server.first_status == 200, server.log()
        assert server.first_latency < 3, server.first_latency
        check_every_worker_follows(apollo, env, server, 4)


def test_uwsgi_lazy_apps_still_one_poller(apollo, app_env, tmp_path):
    with uwsgi(free_port(), tmp_path, app_env, "--lazy-apps", "--cache2", CACHE2,
               "--shared-import", "hotconf.integrations.uwsgi") as server:
        answers = check_every_worker_follows(apollo, app_env, server, 4)
        # registered in the master through shared-import, so it reaches every lazy worker
        assert all(a["signal"] is not None for a in answers.values())


def test_uwsgi_poller_killed_another_takes_over(apollo, app_env, tmp_path):
    with uwsgi(free_port(), tmp_path, app_env, "--cache2", CACHE2) as server:
        every_worker(server.url, 4, want=lambda a: a["greeting"] == "hello")
        first = wait_until(lambda: poller_pid(app_env["APP_ID"], apollo.url, tmp_path / "c"))
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: not pid_alive(first), timeout=5)
        second = wait_until(lambda: (p := poller_pid(app_env["APP_ID"], apollo.url,
                                                     tmp_path / "c")) and p != first and p,
                            timeout=10, message="another process to poll")
        assert second != first
        release_reaches_every_worker(apollo, app_env, server.url, 4, "after-kill")
        assert_one_long_poll(apollo, app_env["APP_ID"])


def test_uwsgi_mule_killed_a_worker_stands_in_then_hands_the_role_back(apollo, app_env,
                                                                      tmp_path):
    """SIGKILL the mule: a worker polls at once (no wait for uWSGI's respawn), a release
    published meanwhile reaches every worker, and the respawned mule takes the role back."""
    env = {**app_env, "HOTCONF_POLLER": "mule"}
    with uwsgi(free_port(), tmp_path, env, "--cache2", CACHE2, "--mule=hotconf_mule.py") as server:
        answers = every_worker(server.url, 4, want=lambda a: a["greeting"] == "hello")
        workers = set(answers)
        mule = wait_until(lambda: (p := poller_pid(env["APP_ID"], apollo.url, tmp_path / "c"))
                          and p not in workers and p, timeout=10, message="the mule to poll")
        assert_one_long_poll(apollo, env["APP_ID"])
        time.sleep(STAND_IN_GRACE)  # a timer by design: workers stand by once it has passed
        os.kill(mule, signal.SIGKILL)
        killed = time.monotonic()
        stand_in = wait_until(lambda: (p := poller_pid(env["APP_ID"], apollo.url,
                                                       tmp_path / "c")) and p != mule and p,
                              timeout=10, interval=0.005, message="another process to poll")
        took = time.monotonic() - killed
        assert stand_in in workers, "a worker stands in: the respawned mule comes later"
        assert took < 2.0, f"the stand-in took {took:.3f} s"  # generous: measured in make bench
        release_reaches_every_worker(apollo, env, server.url, 4, "while-the-mule-is-down")
        back = wait_until(lambda: (p := poller_pid(env["APP_ID"], apollo.url, tmp_path / "c"))
                          and p not in workers and p != mule and p, timeout=15,
                          message="the respawned mule to take the role back")
        assert pid_alive(back)
        assert_one_long_poll(apollo, env["APP_ID"], handovers=True)
        answers = release_reaches_every_worker(apollo, env, server.url, 4, "mule-is-back")
        assert {a["role"] for a in answers.values()} == {"reader"}
        assert_one_long_poll(apollo, env["APP_ID"])


def test_uwsgi_an_apps_task_mule_claims_nothing(apollo, app_env, tmp_path):
    """Only hotconf's run_mule is the preferred poller: a task mule that reads the config (it
    may hold the GIL for seconds, or exit often) never makes the workers yield to it."""
    with uwsgi(free_port(), tmp_path, app_env, "--cache2", CACHE2, "--mule=task_mule.py") as server:
        every_worker(server.url, 4, want=lambda a: a["greeting"] == "hello")
        settings = Settings.resolve(app_id=app_env["APP_ID"], server=apollo.url,
                                    cache_dir=tmp_path / "c", environ={})
        lock = settings.cache_dir / f"{settings.instance_key}.poller.lock"
        wait_until(lambda: PollerLock(lock).holder_pid(), message="a poller")
        time.sleep(1.0)  # the task mule has armed (post-fork hook, its read)
        assert not PollerClaim(lock).pending()
        release_reaches_every_worker(apollo, app_env, server.url, 4, "second")
        assert_one_long_poll(apollo, app_env["APP_ID"])


def test_uwsgi_hotconf_mule_polls_even_under_poller_never(apollo, app_env, tmp_path):
    """HOTCONF_POLLER=never keeps the workers from polling; run_mule still polls."""
    env = {**app_env, "HOTCONF_POLLER": "never"}
    with uwsgi(free_port(), tmp_path, env, "--cache2", CACHE2, "--mule=hotconf_mule.py") as server:
        workers = set(every_worker(server.url, 4, want=lambda a: a["greeting"] == "hello"))
        mule = wait_until(lambda: (p := poller_pid(env["APP_ID"], apollo.url, tmp_path / "c"))
                          and p not in workers and p, timeout=10, message="the mule to poll")
        assert pid_alive(mule)
        release_reaches_every_worker(apollo, env, server.url, 4, "second")
        assert_one_long_poll(apollo, env["APP_ID"])


def test_uwsgi_recycled_workers_stay_fresh(apollo, app_env, tmp_path):
    with uwsgi(free_port(), tmp_path, app_env, "--max-requests", "5",
               "--min-worker-lifetime", "1", processes=2) as server:
        every_worker(server.url, 2, want=lambda a: a["greeting"] == "hello")
        seen = set()
        for value in ("r1", "r2", "r3"):
            time.sleep(1.1)  # min-worker-lifetime
            answers = release_reaches_every_worker(apollo, app_env, server.url, 2, value)
            seen |= set(answers)
        assert len(seen) > 2, "max-requests should have recycled some workers"
        assert_one_long_poll(apollo, app_env["APP_ID"], handovers=True)


def test_uwsgi_full_reload_keeps_serving_current_config(apollo, app_env, tmp_path):
    pidfile = tmp_path / "uwsgi.pid"
    with uwsgi(free_port(), tmp_path, app_env, "--cache2", CACHE2, "--pidfile",
               str(pidfile)) as server:
        release_reaches_every_worker(apollo, app_env, server.url, 4, "before-reload")
        master = int(pidfile.read_text())
        os.kill(master, signal.SIGHUP)  # graceful full reload: the uWSGI cache is wiped
        deadline = time.monotonic() + 20
        answers = []
        while time.monotonic() < deadline and len({a["pid"] for a in answers}) < 8:
            from tests.servers_harness import ask

            answer = ask(server.url, sleep=0.05)
            if answer:
                answers.append(answer)
        assert answers and all(a["greeting"] == "before-reload" for a in answers), answers
        release_reaches_every_worker(apollo, app_env, server.url, 4, "after-reload")


def test_uwsgi_snapshot_larger_than_blocksize_names_the_setting(apollo, app_env, tmp_path):
    big = {f"key{i}": "x" * 100 for i in range(100)}
    apollo.state.publish(app_env["APP_ID"], "default", "application", {**big, "greeting": "big"})
    with uwsgi(free_port(), tmp_path, app_env, "--cache2",
               "name=hotconf,items=16,blocksize=4096") as server:
        every_worker(server.url, 4, want=lambda a: a["greeting"] == "big")
        wait_until(lambda: "blocksize" in server.log(), timeout=10, message="the error")
        log = server.log()
        assert "cache2 = name=hotconf" in log and "holds at most 4096 bytes" in log
        release_reaches_every_worker(apollo, app_env, server.url, 4, "still-works")


@pytest.mark.parametrize("mule", [True, False], ids=["mule", "no-mule"])
def test_uwsgi_a_one_key_release_of_a_big_namespace_makes_no_worker_read_it(apollo, app_env,
                                                                            tmp_path, mule):
    """Workers apply a small release's delta to what they hold; a release that rewrites the
    namespace costs each of them one read of its part."""
    big = {f"key.{i:03d}": "x" * 96 for i in range(500)}
    app = app_env["APP_ID"]
    apollo.state.publish(app, "default", "application", {**big, "greeting": "hello"})
    env = {**app_env, "COUNT_PART_READS": "1"}
    extra: tuple = ()
    if mule:
        env["HOTCONF_POLLER"] = "mule"
        extra = ("--cache2", CACHE2, "--mule=hotconf_mule.py")
    with uwsgi(free_port(), tmp_path, env, *extra) as server:
        before = every_worker(server.url, 4, want=lambda a: a["greeting"] == "hello")
        readers = {pid for pid, a in before.items() if a["role"] == "reader"}
        assert len(readers) >= 3
        for value in ("one", "two"):
            apollo.state.publish(app, "default", "application", {**big, "greeting": value})
            after = every_worker(server.url, 4, want=lambda a, v=value: a["greeting"] == v)
        assert readers & set(after)  # (a recycled reader would leave nothing to compare)
        for pid in readers & set(after):
            assert after[pid]["part_reads"] == before[pid]["part_reads"], (pid, after[pid])
        apollo.state.publish(app, "default", "application",
                             {k: "y" for k in big} | {"greeting": "rewritten"})
        rewritten = every_worker(server.url, 4, want=lambda a: a["greeting"] == "rewritten")
        for pid in readers & set(rewritten):
            reads = rewritten[pid]["part_reads"].get("application", 0)
            assert reads == before[pid]["part_reads"].get("application", 0) + 1, rewritten[pid]


def test_gunicorn_preload_with_post_fork_hook(apollo, app_env, tmp_path):
    with gunicorn(free_port(), tmp_path, app_env, "--preload", "-c",
                  str(SERVERS_DIR / "gunicorn_conf.py")) as server:
        check_every_worker_follows(apollo, app_env, server, 4)


def test_gunicorn_preload_without_hook(apollo, app_env, tmp_path):
    with gunicorn(free_port(), tmp_path, app_env, "--preload") as server:
        check_every_worker_follows(apollo, app_env, server, 4)


def test_gunicorn_without_preload(apollo, app_env, tmp_path):
    with gunicorn(free_port(), tmp_path, app_env) as server:
        check_every_worker_follows(apollo, app_env, server, 4)


def test_gunicorn_poller_killed_another_takes_over(apollo, app_env, tmp_path):
    with gunicorn(free_port(), tmp_path, app_env, "--preload") as server:
        every_worker(server.url, 4, want=lambda a: a["greeting"] == "hello")
        first = wait_until(lambda: poller_pid(app_env["APP_ID"], apollo.url, tmp_path / "c"))
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: (p := poller_pid(app_env["APP_ID"], apollo.url, tmp_path / "c"))
                   and p != first, timeout=10, message="another worker to poll")
        release_reaches_every_worker(apollo, app_env, server.url, 4, "after-kill")
        assert_one_long_poll(apollo, app_env["APP_ID"])


def test_uvicorn_workers(apollo, app_env, tmp_path):
    port = free_port()
    argv = [str(BIN / "uvicorn"), "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
            "--app-dir", str(SERVERS_DIR), "--no-access-log", "asgi_app:app"]
    with ServerProcess(argv, app_env, port, tmp_path / "uvicorn.log", signal.SIGTERM) as server:
        every_worker(server.url, 2, want=lambda a: a["greeting"] == "hello")
        assert_one_long_poll(apollo, app_env["APP_ID"])
        release_reaches_every_worker(apollo, app_env, server.url, 2, "second")
        assert_one_long_poll(apollo, app_env["APP_ID"])
