"""Secrets stay secret; server data is never executed; files are private."""

import logging
import os
import re
import subprocess
from pathlib import Path

import pytest

from hotconf import Config
from tests.helpers import HOTCONF, wait_until

ROOT = Path(__file__).resolve().parents[2]
ACCESS_SECRET = "AK-9f3c1e77-secret"
DB_PASSWORD = "pw-5d2a8b"


def test_secrets_never_reach_logs_errors_cli_or_status(devserver, cache_dir, caplog):
    caplog.set_level(logging.DEBUG, logger="hotconf")
    devserver.state.set_secret("demo", ACCESS_SECRET)
    devserver.state.publish("demo", "default", "application", {
        "db.password": DB_PASSWORD, "db.url": f"postgresql://app:{DB_PASSWORD}@db-1/app",
        "api.token": DB_PASSWORD})
    seen = []
    with Config(app_id="demo", server=devserver.url, secret=ACCESS_SECRET, cache_dir=cache_dir,
                reload_on=["db.*"], reload_wait=(0.1, 0.5), on_reload=lambda r: None) as cfg:
        assert cfg.get("db.password") == DB_PASSWORD  # the app itself gets the real value
        seen.append(repr(cfg))
        seen.append(repr(cfg.settings))
        devserver.state.publish("demo", "default", "application", {
            "db.password": DB_PASSWORD + "x", "db.url": f"postgresql://app:{DB_PASSWORD}x@db-2/app",
            "api.token": DB_PASSWORD + "x"})
        wait_until(lambda: "because" in caplog.text, timeout=5, message="the reload log line")
        env = {**os.environ, "APP_ID": "demo", "APOLLO_META": devserver.url,
               "APOLLO_CACHE_DIR": str(cache_dir), "APOLLO_ACCESS_KEY_SECRET": ACCESS_SECRET}
        for args in (["get", "db.password"], ["get", "db.url"], ["dump"], ["dump", "--json"],
                     ["status"], ["status", "--json"], ["get", "missing"]):
            out = subprocess.run(HOTCONF + args, capture_output=True, text=True, timeout=30,
                                 env=env)
            seen += [out.stdout, out.stderr]
    # a rejected signature: the error message and the log
    devserver.state.set_secret("demo", "another")
    bad = Config(app_id="demo", server=devserver.url, secret=ACCESS_SECRET,
                 cache_dir=cache_dir / "other")
    with pytest.raises(Exception) as info:
        bad.get("k")
    bad.stop()
    seen += [str(info.value), caplog.text]
    everything = "\n".join(seen)
    assert ACCESS_SECRET not in everything
    assert DB_PASSWORD not in everything
    assert "****" in everything  # masked, not silently dropped


def test_no_eval_pickle_or_unsafe_yaml_on_server_data():
    source = "\n".join(p.read_text() for p in (ROOT / "hotconf").rglob("*.py"))
    assert not re.search(r"\beval\(|\bexec\(|\bpickle\b|\bmarshal\b", source)
    for call in re.findall(r"yaml\.\w*load\w*\([^)]*\)", source):
        assert "SafeLoader" in call, call


def test_yaml_tags_that_build_objects_are_refused(devserver, make_config, hotconf_logs):
    devserver.state.publish("demo", "default", "evil.yaml",
                            {"content": "!!python/object/apply:os.system ['touch /tmp/pwned']\n"})
    cfg = make_config(namespaces=["evil.yaml"])
    cfg.get("x", namespace="evil.yaml")
    assert not Path("/tmp/pwned").exists()
    assert "is not usable" in hotconf_logs.text


def test_dev_server_compares_signatures_in_constant_time():
    signing = (ROOT / "hotconf" / "apollo" / "signing.py").read_text()
    assert "hmac.compare_digest(" in signing.split("def verify")[1]
    server = (ROOT / "hotconf" / "devserver" / "server.py").read_text()
    assert "signing.verify(" in server


def test_files_are_private(devserver, make_config, cache_dir):
    devserver.state.publish("demo", "default", "application", {"k": "v"})
    cfg = make_config()
    cfg.get("k")
    assert cfg.stop() is None  # (stopping waits for the cache file, written behind the load)
    for path in [cache_dir, *cache_dir.iterdir()]:
        mode = path.stat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_a_world_writable_cache_dir_gets_a_private_subdirectory(devserver, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    devserver.state.publish("demo", "default", "application", {"k": "v"})
    with Config(app_id="demo", server=devserver.url, cache_dir=shared) as cfg:
        assert cfg.get("k") == "v"
        assert cfg.cache_path.parent == shared / f"hotconf-{os.getuid()}"
        assert cfg.cache_path.parent.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in shared.iterdir()] == [f"hotconf-{os.getuid()}"]
