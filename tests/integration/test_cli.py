"""Every `hotconf` subcommand, run as the installed command, as a user would."""

import json
import os
import signal
import subprocess
import sys

import pytest

from hotconf import Config
from tests.helpers import HOTCONF, free_port, wait_until


def run(*args, env=None, timeout=30):
    return subprocess.run(HOTCONF + list(args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def published(devserver, tmp_path):
    devserver.state.publish("demo", "default", "application",
                            {"timeout": "30", "db.password": "hunter2",
                             "db.url": "postgresql://app:pw9@db-1/app"})
    devserver.state.publish("demo", "default", "db.yaml", {"content": "pool:\n  size: 5\n"})
    return {"APP_ID": "demo", "APOLLO_META": devserver.url,
            "APOLLO_CACHE_DIR": str(tmp_path / "cache")}


def test_get(published):
    out = run("get", "timeout", env=published)
    assert (out.returncode, out.stdout) == (0, "30\n") and out.stderr == ""
    out = run("get", "pool.size", "-n", "db.yaml", "--json", env=published)
    assert json.loads(out.stdout)["value"] == "5"


def test_get_masks_secrets_unless_asked(published):
    assert run("get", "db.password", env=published).stdout == "****\n"
    assert run("get", "db.url", env=published).stdout == "postgresql://app:****@db-1/app\n"
    assert run("get", "db.password", "--show-secrets", env=published).stdout == "hunter2\n"


def test_get_errors_have_distinct_exit_codes(published):
    out = run("get", "nope", env=published)
    assert out.returncode == 4 and "no key 'nope'" in out.stderr
    out = run("get", "x", "-n", "unpublished", env=published)
    assert out.returncode == 4 and "404" in out.stderr
    out = run("get", "x", env={**published, "APOLLO_META": f"http://127.0.0.1:{free_port()}"})
    assert out.returncode == 3 and "--offline" in out.stderr
    out = run("get", "x", env={**published, "APP_ID": ""})
    assert out.returncode == 2 and "APP_ID" in out.stderr


def test_get_and_dump_offline_read_the_local_cache(published, devserver):
    out = run("get", "timeout", "--offline", env=published)
    assert out.returncode == 1 and "no usable local cache" in out.stderr
    with Config(namespaces=["application"], app_id="demo", server=devserver.url,
                cache_dir=published["APOLLO_CACHE_DIR"]) as cfg:
        cfg.get("timeout")
    devserver.stop()
    out = run("get", "timeout", "--offline", env=published)
    assert (out.returncode, out.stdout) == (0, "30\n")
    out = run("dump", "--offline", "--json", env=published)
    assert json.loads(out.stdout)["application"]["values"]["timeout"] == "30"


def test_dump(published):
    out = run("dump", "application", "db.yaml", env=published)
    assert out.returncode == 0
    assert "# application  release " in out.stdout and "timeout = 30" in out.stdout
    assert "db.password = ****" in out.stdout and "hunter2" not in out.stdout
    assert "pool.size = 5" in out.stdout
    doc = json.loads(run("dump", "--json", env=published).stdout)
    assert doc["application"]["values"]["db.password"] == "****"


def test_watch_prints_changes_until_interrupted(published, devserver):
    proc = subprocess.Popen(HOTCONF + ["watch", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **published})
    try:
        assert "Ctrl-C to stop" in proc.stderr.readline()
        wait_until(lambda: devserver.state.stats()["long_polls_open"] == 1)
        devserver.state.publish("demo", "default", "application",
                                {"timeout": "60", "db.password": "swordfish",
                                 "db.url": "postgresql://app:pw9@db-1/app"})
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
        by_key = {line["key"]: line for line in lines}
        assert by_key["timeout"]["old"] == "30" and by_key["timeout"]["new"] == "60"
        assert by_key["db.password"]["new"] == "****"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    # it used its own scratch cache, never the host's
    assert not os.path.exists(published["APOLLO_CACHE_DIR"])


def test_status_shows_what_the_host_holds(published, devserver):
    out = run("status", env=published)
    assert out.returncode == 1 and "(none" in out.stdout
    with Config(app_id="demo", server=devserver.url, namespaces=["application"],
                cache_dir=published["APOLLO_CACHE_DIR"]) as cfg:
        cfg.get("timeout")
        out = run("status", "--json", env=published)
        info = json.loads(out.stdout)
        assert out.returncode == 0 and info["poller"]["pid"] == os.getpid()
        assert info["host"]["releases"]["application"] == cfg.namespace().release_key
        assert [p["pid"] for p in info["processes"]] == [os.getpid()]
        assert info["processes"][0]["releases"] == info["host"]["releases"]
        text = run("status", env=published).stdout
        assert f"poller: process {os.getpid()}" in text and "application: release" in text
        assert "hunter2" not in text
    out = run("status", env=published)  # stopped: its row is gone, nobody polls
    assert "none running on this host" in out.stdout and str(os.getpid()) not in out.stdout
    assert out.returncode == 1


def test_reload_through_a_fifo(tmp_path):
    fifo = tmp_path / "master.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a master reading it, open first
    try:
        out = run("reload", "--fifo", str(fifo), "--chain")
        assert out.returncode == 0 and "chain reload" in out.stdout, out.stderr
        assert os.read(reader, 16) == b"c"
    finally:
        os.close(reader)


def test_reload_fifo_errors_never_hang(tmp_path):
    out = run("reload", "--fifo", str(tmp_path / "missing"), timeout=10)
    assert out.returncode == 1 and "master-fifo" in out.stderr
    fifo = tmp_path / "orphan.fifo"
    os.mkfifo(fifo)
    out = run("reload", "--fifo", str(fifo), timeout=10)  # nobody reads it: must not block
    assert out.returncode == 1 and "nothing reads the FIFO" in out.stderr
    plain = tmp_path / "plain"
    plain.write_text("")
    out = run("reload", "--fifo", str(plain), timeout=10)
    assert out.returncode == 1


def test_reload_through_a_pidfile(tmp_path):
    marker = tmp_path / "got-hup"
    child = subprocess.Popen([sys.executable, "-c", (
        "import signal, time, pathlib\n"
        f"signal.signal(signal.SIGHUP, lambda *a: pathlib.Path({str(marker)!r}).write_text('1'))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        pidfile = tmp_path / "server.pid"
        pidfile.write_text(f"{child.pid}\n")
        out = run("reload", "--pidfile", str(pidfile))
        assert out.returncode == 0 and f"SIGHUP (graceful reload) to process {child.pid}" in out.stdout
        wait_until(marker.exists, timeout=5)
        out = run("reload", "--pidfile", str(pidfile), "--chain")
        assert out.returncode == 2 and "--fifo" in out.stderr
    finally:
        child.kill()
        child.wait(5)
    out = run("reload", "--pidfile", str(pidfile))
    assert out.returncode == 1 and "stale pidfile" in out.stderr
    (tmp_path / "junk.pid").write_text("hello")
    out = run("reload", "--pidfile", str(tmp_path / "junk.pid"))
    assert out.returncode == 1 and "does not hold a process id" in out.stderr


def test_help_reads_well():
    out = run("--help")
    for command in ("serve", "publish", "get", "dump", "watch", "status", "reload"):
        assert command in out.stdout
    assert "exit 4" in run("get", "--help").stdout.lower()
    assert "APOLLO_ACCESS_KEY_SECRET" in run("dump", "--help").stdout


def test_status_names_the_apps_other_configurations_not_its_earlier_generations(tmp_path):
    from hotconf.cli import _other_keys
    from hotconf.options import Settings

    mine = Settings.resolve(app_id="app", config_service="http://x", cache_dir=tmp_path,
                            environ={})
    other = Settings.resolve(app_id="app", config_service="http://x", cache_dir=tmp_path,
                             namespaces=["application", "db.yaml"], environ={})
    for key in (mine.instance_key, *mine.earlier_instance_keys, other.instance_key):
        (tmp_path / f"{key}.procs").mkdir()
    assert _other_keys(mine) == [other.instance_key]
