"""The deployments people really run, with real processes: gunicorn as PID 1 in a container
and under a shell wrapper that does not exec, uWSGI without a master, a lock file deleted
under a running poller. What a user sees is checked: every worker's answer, the dev server's
open long polls, the server's log (no killed workers, one reload)."""

from __future__ import annotations

import shutil
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
