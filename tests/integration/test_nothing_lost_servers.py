"""Nothing lost, with real gunicorn processes: every hotconf file on the host deleted and the
poller killed loses no release; a poller killed inside the reload settle window still gives
exactly one reload."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

from tests.helpers import free_port, wait_until
from tests.servers_harness import (
    BIN,
    SERVERS_DIR,
    ServerProcess,
    every_worker,
    poller_pid,
    release_reaches_every_worker,
)

pytestmark = pytest.mark.servers


def gunicorn(port, env, tmp_path, *extra, workers=3):
    argv = [str(BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}", "--chdir",
            str(SERVERS_DIR), *extra, "flask_app:app"]
    return ServerProcess(argv, env, port, tmp_path / "gunicorn.log", signal.SIGTERM)


def test_every_file_deleted_and_the_poller_killed_loses_no_release(apollo, app_env, tmp_path):
    env = {**app_env, "RELOAD_ON": ""}
    cache = tmp_path / "c"
    with gunicorn(free_port(), env, tmp_path) as server:
        release_reaches_every_worker(apollo, env, server.url, 3, "v1")
        for step in ("v2", "v3", "v4"):  # versions move on past 1, 2, 3...
            release_reaches_every_worker(apollo, env, server.url, 3, step)
        old = poller_pid(env["APP_ID"], apollo.url, cache)
        assert old
        shutil.rmtree(cache)  # `rm -rf ~/.cache/hotconf`, a tmp cleaner, a new volume
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: poller_pid(env["APP_ID"], apollo.url, cache) not in (None, old),
                   timeout=20, message="a new poller")
        release_reaches_every_worker(apollo, env, server.url, 3, "after the loss")


def test_a_deleted_cache_dir_then_a_recycled_worker_boots_with_the_config(apollo, app_env,
                                                                          tmp_path):
    """The app reads config at import: a worker that starts after the cache dir was wiped must
    still boot (the poller writes its snapshot back), not fail gunicorn's boot."""
    env = {**app_env, "RELOAD_ON": ""}
    cache = tmp_path / "c"
    with gunicorn(free_port(), env, tmp_path) as server:
        release_reaches_every_worker(apollo, env, server.url, 3, "v1")
        poller = poller_pid(env["APP_ID"], apollo.url, cache)
        shutil.rmtree(cache)
        wait_until(lambda: any(cache.glob("*.json")), timeout=10,
                   message="the poller to write the snapshot back")
        answers = every_worker(server.url, 3)
        reader = next(pid for pid in answers if pid != poller)
        os.kill(reader, signal.SIGTERM)  # recycled, as by max-requests
        every_worker(server.url, 3, want=lambda a: a["greeting"] == "v1" and
                     a["at_import"] == "v1" if a["pid"] not in answers else True, timeout=30)
        assert "Worker failed to boot" not in server.log(tail=None)


@pytest.mark.parametrize("how", ["sigkill", "recycled-with-post-fork-hook"])
def test_a_poller_killed_inside_the_settle_window_still_reloads_once(apollo, app_env, tmp_path,
                                                                    how):
    env = {**app_env, "RELOAD_ON": "db.*"}
    base = {"greeting": "hello", "db.url": "pg://a"}
    apollo.state.publish(env["APP_ID"], "default", "application", base)
    cache = tmp_path / "c"
    extra = ["--preload", "-c", str(SERVERS_DIR / "gunicorn_conf.py")] if how != "sigkill" else []
    sig = signal.SIGKILL if how == "sigkill" else signal.SIGTERM
    with gunicorn(free_port(), env, tmp_path, *extra) as server:
        every_worker(server.url, 3, want=lambda a: a["db"] == "pg://a")
        old = wait_until(lambda: poller_pid(env["APP_ID"], apollo.url, cache), message="poller")
        apollo.state.publish(env["APP_ID"], "default", "application",
                             {**base, "db.url": "pg://b"})
        wait_until(lambda: every_worker(server.url, 2, want=lambda a: a["greeting"] == "hello"),
                   message="the release to land")
        os.kill(old, sig)  # inside the 1 s settle window of the test app
        wait_until(lambda: "Handling signal: hup" in server.log(tail=None), timeout=20,
                   message="the reload the dead poller owed")
        time.sleep(6)  # past every settle window: a second reload would show now
        log = server.log(tail=None)
        assert log.count("Handling signal: hup") == 1, log
