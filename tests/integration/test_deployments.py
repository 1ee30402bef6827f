"""The deployments people really run, with real processes: gunicorn as PID 1 in a container
and under a shell wrapper that does not exec, uWSGI without a master, a lock file deleted
under a running poller. What a user sees is checked: every worker's answer, the dev server's
open long polls, the server's log (no killed workers, one reload)."""

from __future__ import annotations

import shutil
import signal
import sys
import time

import pytest

from hotconf.options import Settings
from tests.helpers import free_port, wait_until
from tests.servers_harness import (
    BIN,
    CACHE2,
    SERVERS_DIR,
    UWSGI,
    ServerProcess,
    assert_one_long_poll,
    every_worker,
    long_polls,
    poller_pid,
    release_reaches_every_worker,
)

pytestmark = pytest.mark.servers


def gunicorn_argv(port, *extra, workers=3):
    return [str(BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}", "--chdir",
            str(SERVERS_DIR), *extra, "flask_app:app"]


def hup_reloads(server):
    return server.log(tail=None).count("gunicorn reload (SIGHUP to the arbiter")


def assert_reload_once_and_no_worker_killed(apollo, env, server, workers):
    every_worker(server.url, workers, want=lambda a: a["greeting"] == "hello")
    assert_one_long_poll(apollo, env["APP_ID"])
    apollo.state.publish(env["APP_ID"], "default", "application",
                         {"greeting": "after", "db.url": "pg://changed"})
    every_worker(server.url, workers, want=lambda a: a["greeting"] == "after", timeout=30)
    wait_until(lambda: "Handling signal: hup" in server.log(tail=None), timeout=20,
               message="gunicorn to reload on the db.url change")
    time.sleep(2.0)  # past the settle window: a second reload would show now
    log = server.log(tail=None)
    assert hup_reloads(server) == 1, log
    assert log.count("Handling signal: hup") == 1, log
    assert "was sent SIGHUP" not in log and "was sent SIGTERM" not in log.split(
        "Handling signal: hup")[0], log
    # after the reload: every (new) worker serves the release, still one long poll
    every_worker(server.url, workers, want=lambda a: a["greeting"] == "after", timeout=30)
    assert_one_long_poll(apollo, env["APP_ID"])


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is missing")
def test_gunicorn_preload_as_pid_1_in_a_container(apollo, app_env, tmp_path):
    """`CMD ["gunicorn", "--preload", ...]`: the arbiter is PID 1 and its parent pid is 0."""
    port = free_port()
    argv = ["unshare", "-pf", "--mount-proc", *gunicorn_argv(port, "--preload")]
    with ServerProcess(argv, app_env, port, tmp_path / "gunicorn.log") as server:
        assert_reload_once_and_no_worker_killed(apollo, app_env, server, 3)


def test_gunicorn_preload_under_a_shell_that_does_not_exec(apollo, app_env, tmp_path):
    """An entrypoint script that runs gunicorn as a child (its command line says gunicorn)."""
    port = free_port()
    script = " ".join(gunicorn_argv(port, "--preload")) + "; echo gunicorn exited"
    with ServerProcess(["sh", "-c", script], app_env, port, tmp_path / "gunicorn.log") as server:
        assert_reload_once_and_no_worker_killed(apollo, app_env, server, 3)


def test_uwsgi_without_master_every_worker_follows(apollo, app_env, tmp_path):
    """uWSGI's default: no master. The first process imports the app and C-forks the others."""
    port = free_port()
    argv = [UWSGI, "--processes", "4", "--http-socket", f"127.0.0.1:{port}", "--module",
            "flask_app:app", "--pythonpath", str(SERVERS_DIR), "--virtualenv", sys.prefix,
            "--enable-threads", "--need-app", "--disable-logging", "--cache2", CACHE2]
    env = {**app_env, "RELOAD_ON": ""}
    with ServerProcess(argv, env, port, tmp_path / "uwsgi.log") as server:
        every_worker(server.url, 4, want=lambda a: a["greeting"] == "hello")
        assert_one_long_poll(apollo, env["APP_ID"])
        for value in ("one", "two"):
            release_reaches_every_worker(apollo, env, server.url, 4, value)
        assert_one_long_poll(apollo, env["APP_ID"])


def test_a_deleted_lock_file_never_gives_two_pollers(apollo, app_env, tmp_path):
    env = {**app_env, "RELOAD_ON": ""}
    port = free_port()
    with ServerProcess(gunicorn_argv(port, workers=3), env, port,
                       tmp_path / "gunicorn.log") as server:
        every_worker(server.url, 3, want=lambda a: a["greeting"] == "hello")
        cache = tmp_path / "c"
        original = wait_until(lambda: poller_pid(env["APP_ID"], apollo.url, cache),
                              message="a poller")
        settings = Settings.resolve(app_id=env["APP_ID"], server=apollo.url, cache_dir=cache,
                                    environ={})
        lock = cache / f"{settings.instance_key}.poller.lock"
        for attempt in range(2):  # a tmp cleaner, then a deploy that wipes it again
            lock.unlink()
            samples = []
            for _ in range(25):  # 5 s: longer than a standby's patience with a missing file
                samples.append(long_polls(apollo, env["APP_ID"]))
                time.sleep(0.2)
            assert max(samples) == 1, samples
            assert lock.exists(), "the poller put its lock file back"
            assert poller_pid(env["APP_ID"], apollo.url, cache) == original
            release_reaches_every_worker(apollo, env, server.url, 3, f"after-delete-{attempt}")
        assert_one_long_poll(apollo, env["APP_ID"])


DJANGO_DIR = SERVERS_DIR / "django_site"


def django_follows(apollo, env, server, workers):
    every_worker(server.url, workers, want=lambda a: a["greeting"] == "hello")
    assert_one_long_poll(apollo, env["APP_ID"])
    for value in ("one", "two"):
        release_reaches_every_worker(apollo, env, server.url, workers, value)
    assert_one_long_poll(apollo, env["APP_ID"])


def test_django_under_uwsgi_prefork(apollo, app_env, tmp_path):
    pytest.importorskip("django")
    port = free_port()
    argv = [UWSGI, "--master", "--processes", "4", "--http-socket", f"127.0.0.1:{port}",
            "--module", "djsite.wsgi:application", "--pythonpath", str(DJANGO_DIR),
            "--virtualenv", sys.prefix, "--enable-threads", "--need-app", "--die-on-term",
            "--disable-logging", "--cache2", CACHE2]
    with ServerProcess(argv, app_env, port, tmp_path / "uwsgi.log", cwd=DJANGO_DIR) as server:
        django_follows(apollo, app_env, server, 4)


def test_django_under_gunicorn_preload(apollo, app_env, tmp_path):
    pytest.importorskip("django")
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-w", "3", "-b", f"127.0.0.1:{port}", "--chdir",
            str(DJANGO_DIR), "--preload", "djsite.wsgi:application"]
    with ServerProcess(argv, app_env, port, tmp_path / "gunicorn.log", cwd=DJANGO_DIR) as server:
        django_follows(apollo, app_env, server, 3)


@pytest.mark.parametrize("preload", [True, False], ids=["preload", "no-preload"])
def test_gunicorn_gevent_workers(apollo, app_env, tmp_path, preload):
    """gunicorn -k gevent with a config service 0.3 s away: the first concurrent requests of
    fresh workers all wait for the first load (no 500), one long poll for the host, every
    worker follows releases, and a held long poll does not slow requests down."""
    pytest.importorskip("gevent")
    import concurrent.futures

    import requests

    from tests.faulty_proxy import FaultyProxy

    with FaultyProxy(apollo.url, delay=0.3) as proxy:
        env = {**app_env, "APOLLO_META": "", "APOLLO_CONFIG_SERVICE": proxy.url,
               "RELOAD_ON": ""}
        port = free_port()
        extra = ["-k", "gevent", *(["--preload"] if preload else [])]
        server = ServerProcess(gunicorn_argv(port, *extra, workers=2), env, port,
                               tmp_path / "gunicorn.log", signal.SIGTERM)
        try:
            server.start(first_request=False)

            def first(_):
                r = requests.get(server.url + "/", timeout=30)
                return r.status_code, r.json()["greeting"] if r.status_code == 200 else r.text

            with concurrent.futures.ThreadPoolExecutor(40) as pool:
                answers = list(pool.map(first, range(40)))
            assert answers == [(200, "hello")] * 40, (answers, server.log())
            every_worker(server.url, 2, want=lambda a: a["greeting"] == "hello")
            assert_one_long_poll(apollo, env["APP_ID"])
            release_reaches_every_worker(apollo, env, server.url, 2, "gevent")
            slowest = 0.0
            for _ in range(20):  # a long poll is held meanwhile: requests must stay quick
                start = time.monotonic()
                assert requests.get(server.url + "/", timeout=10).status_code == 200
                slowest = max(slowest, time.monotonic() - start)
            assert slowest < 0.5, slowest
            assert "Traceback" not in server.log(tail=None), server.log()
        finally:
            server.stop()


def old_uwsgi_argv(binary, port, *extra):
    return [binary, "--master", "--processes", "2", "--http-socket", f"127.0.0.1:{port}",
            "--module", "flask_app:app", "--pythonpath", str(SERVERS_DIR), "--virtualenv",
            sys.prefix, "--need-app", "--die-on-term", "--disable-logging", "--cache2", CACHE2,
            *extra]


def test_old_uwsgi_without_enable_threads_says_so_at_startup(apollo, app_env, tmp_path,
                                                             old_uwsgi):
    """uWSGI before 2.0.27 runs no Python thread unless told: the workers cannot follow, and
    the log must say so, with the fix, as soon as they start."""
    port = free_port()
    env = {**app_env, "RELOAD_ON": ""}
    with ServerProcess(old_uwsgi_argv(old_uwsgi, port), env, port,
                       tmp_path / "uwsgi.log") as server:
        wait_until(lambda: "Python threads are disabled in this uWSGI 2.0.26" in server.log(
            tail=None), timeout=20, message="hotconf's error about threads")
        assert "enable-threads = true" in server.log(tail=None)


def test_old_uwsgi_with_enable_threads_follows(apollo, app_env, tmp_path, old_uwsgi):
    port = free_port()
    env = {**app_env, "RELOAD_ON": ""}
    with ServerProcess(old_uwsgi_argv(old_uwsgi, port, "--enable-threads"), env, port,
                       tmp_path / "uwsgi.log") as server:
        every_worker(server.url, 2, want=lambda a: a["greeting"] == "hello")
        release_reaches_every_worker(apollo, env, server.url, 2, "threads on")
        assert_one_long_poll(apollo, env["APP_ID"])
        assert "Python threads are disabled" not in server.log(tail=None)


def test_gunicorn_gevent_pywsgi_preload_reloads_once(apollo, app_env, tmp_path):
    """Under gevent_pywsgi a request greenlet has no gunicorn object on its stack: the worker is
    still told apart (from gunicorn's objects in the process) and reload_on reaches the arbiter."""
    pytest.importorskip("gevent")
    port = free_port()
    with ServerProcess(gunicorn_argv(port, "-k", "gevent_pywsgi", "--preload"), app_env, port,
                       tmp_path / "gunicorn.log", signal.SIGTERM) as server:
        assert_reload_once_and_no_worker_killed(apollo, app_env, server, 3)
