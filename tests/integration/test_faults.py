"""Faults between the client and the config service: every hostile or broken answer, on the long
poll and on the fetch. The poller survives each, keeps the last good config, backs off (no busy
loop, no retry storm), and picks up the next release once the service behaves again."""

import os
import time

import pytest

from hotconf import Config
from tests.faulty_proxy import FAULTS, FaultyProxy
from tests.helpers import wait_until

# Short timeouts and backoff so each fault plays out in seconds; the logic is the production one.
FAST = dict(connect_timeout=1, fetch_timeout=1, poll_timeout=3, backoff_initial=0.5,
            backoff_max=1)
WINDOW = 3.5


def publish(devserver, value):
    devserver.state.publish("demo", "default", "application", {"k": value})


@pytest.fixture
def proxied(devserver, cache_dir):
    devserver.state.hold_seconds = 2
    publish(devserver, "v1")
    with FaultyProxy(devserver.url) as proxy:
        cfg = Config(app_id="demo", config_service=proxy.url, cache_dir=cache_dir,
                     store="memory", **FAST)
        assert cfg.get("k") == "v1"
        try:
            yield proxy, cfg
        finally:
            cfg.stop()


@pytest.mark.parametrize("where", ["/notifications/v2", "/configs/"])
@pytest.mark.parametrize("kind", FAULTS)
def test_fault_is_survived_with_backoff_and_last_good_kept(devserver, proxied, kind, where,
                                                           hotconf_logs):
    proxy, cfg = proxied
    wait_until(lambda: proxy.count("/notifications/v2") >= 2, message="the poll loop to run")
    proxy.fault(where, kind)
    started = time.monotonic()
    publish(devserver, "v2")  # released while the service misbehaves
    time.sleep(WINDOW)
    if where.startswith("/configs"):
        assert cfg.get("k") == "v1"  # the bad answer never replaced the good release
    attempts = proxy.count(where, since=started)
    # backoff 0.5 s then 1 s: a handful of attempts in 3.5 s, never a busy loop
    assert attempts <= 8, f"{attempts} requests to {where} in {WINDOW}s"
    assert cfg._binding._own_role().poller.running, "the poller thread died"
    proxy.heal()
    wait_until(lambda: cfg.get("k") == "v2", timeout=15, message="recovery after the fault")
    assert "unexpected error" not in hotconf_logs.text  # a clear message, not a traceback


def test_wrong_secret_backs_off_instead_of_storming(devserver, cache_dir, hotconf_logs):
    publish(devserver, "v1")
    devserver.state.set_secret("demo", "right")
    with FaultyProxy(devserver.url) as proxy:
        cfg = Config(app_id="demo", config_service=proxy.url, cache_dir=cache_dir,
                     store="memory", secret="wrong-one", **FAST)
        try:
            with pytest.raises(Exception, match="401"):
                cfg.get("k")
            time.sleep(WINDOW)
            assert proxy.count("/") <= 8
            assert "signature rejected (401 Unauthorized)" in hotconf_logs.text
        finally:
            cfg.stop()


def test_a_trickling_answer_is_cut_at_the_deadline(devserver, proxied):
    proxy, cfg = proxied
    proxy.fault("/configs/", "trickle")
    from hotconf.apollo.client import ApolloClient

    client = ApolloClient(cfg.settings)
    started = time.monotonic()
    with pytest.raises(Exception, match="took too long"):
        client.fetch_config("application")
    # connect 1 s + fetch 1 s, with slack: not the 500 s the trickle would take
    assert time.monotonic() - started < 4
    client.close()


@pytest.mark.parametrize("content", [
    b'{"format":"hotconf-snapshot/1","app_id":"demo","cluster":"default","vers',  # truncated
    b"\xff" * 100,
])
def test_truncated_or_binary_cache_file_is_ignored(devserver, make_config, content, hotconf_logs):
    cfg = make_config()
    cfg.cache_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    cfg.cache_path.write_bytes(content)
    publish(devserver, "v1")
    assert cfg.get("k") == "v1"
    assert "corrupt or unreadable" in hotconf_logs.text


def test_unreadable_cache_path_is_ignored(devserver, make_config, hotconf_logs):
    cfg = make_config(store="memory")
    cfg.cache_path.mkdir(parents=True)  # a directory where the file should be
    publish(devserver, "v1")
    assert cfg.get("k") == "v1"
    assert "corrupt or unreadable" in hotconf_logs.text


def test_symlink_planted_at_the_cache_path_is_not_followed(devserver, make_config, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    cfg = make_config(store="memory")
    cfg.cache_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.symlink(victim, cfg.cache_path)
    publish(devserver, "v1")
    assert cfg.get("k") == "v1"
    wait_until(lambda: not cfg.cache_path.is_symlink(), message="the link to be replaced")
    assert victim.read_text() == "do not touch"
    assert (cfg.cache_path.stat().st_mode & 0o777) == 0o600


def test_full_disk_keeps_serving_from_memory(devserver, cache_dir, tmp_path):
    """RLIMIT_FSIZE makes every write past a few bytes fail with EFBIG, as a full disk does."""
    import subprocess
    import sys

    publish(devserver, "v1")
    script = f"""
import logging, resource, signal, sys, time
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))
logging.basicConfig(level=logging.WARNING)
from hotconf import Config
cfg = Config(app_id="demo", server={devserver.url!r}, cache_dir={str(cache_dir)!r})
print(cfg.get("k"), flush=True)
sys.stdin.readline()
deadline = time.monotonic() + 10
while cfg.get("k") != "v2" and time.monotonic() < deadline:
    time.sleep(0.05)
print(cfg.get("k"), flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "v1"
        publish(devserver, "v2")
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "v2"
        proc.stdin.close()
        assert proc.wait(10) == 0
        err = proc.stderr.read()
        assert "cannot write the local cache" in err or "cannot use" in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
