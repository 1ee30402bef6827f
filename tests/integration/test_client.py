"""The real client against the real dev server over HTTP on 127.0.0.1."""

import json
import os
import stat
import threading
import time

import pytest

from hotconf import (
    ChangeType,
    Config,
    ConfigUnavailableError,
    ConfigValueError,
    UnknownNamespaceError,
)
from hotconf.apollo.client import ApolloClient
from hotconf.cache import LocalCache
from hotconf.options import Settings
from tests.helpers import ScriptedServer, free_port, reply, wait_until


def publish(srv, ns="application", values=None, app="demo", cluster="default"):
    return srv.state.publish(app, cluster, ns, values or {})


class Recorder:
    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def __call__(self, event):
        with self.lock:
            self.events.append(event)

    def keys(self):
        return [sorted(e.changes) for e in self.events]


def test_construction_starts_nothing(devserver, make_config):
    publish(devserver, values={"k": "v"})
    before = {t.name for t in threading.enumerate()}
    cfg = make_config()
    assert {t.name for t in threading.enumerate()} == before
    assert devserver.state.stats()["requests"] == {}
    assert cfg.source == "none"
    assert cfg.get("k") == "v"  # the first read loads and starts the poller
    assert cfg.source == "remote"
    assert "hotconf-poller" in {t.name for t in threading.enumerate()}


@pytest.mark.parametrize("disk", ["writable", "refusing"])
def test_a_master_that_will_fork_starts_no_thread_and_writes_the_cache_itself(
        devserver, make_config, monkeypatch, tmp_path, disk):
    """uWSGI forks its workers from C while a Python thread may hold the GIL (every child then
    hangs): a master's import-time load starts no thread, not even the cache file's writer,
    nor a timer to write it again when the disk refuses it."""
    from hotconf.process import binding
    publish(devserver, values={"k": "v"})
    monkeypatch.setattr(binding, "will_fork", lambda facts: True)
    started, real_start = [], threading.Thread.start

    def start(thread):
        started.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    if disk == "refusing":
        (tmp_path / "file").write_text("not a directory")
        cfg = make_config(cache_dir=tmp_path / "file" / "cache")
    else:
        cfg = make_config()
    assert cfg.get("k") == "v"
    assert not [name for name in started if name.startswith("hotconf")], started
    if disk == "writable":  # written before the read returned
        assert json.loads(cfg.cache_path.read_text())["namespaces"]


def test_a_listeners_thread_starts_with_the_first_snapshot_not_at_the_first_release(
        devserver, make_config):
    """Registered before the process arms (at import, before a fork), a listener gets its
    thread when the process takes its first snapshot: starting it at the first release made
    that release the slowest to reach 16 workers."""
    publish(devserver, values={"k": "v"})
    cfg = make_config()
    cfg.on_change(Recorder())
    assert not [t for t in threading.enumerate() if t.name.startswith("hotconf-listener")]
    assert cfg.get("k") == "v"
    assert [t for t in threading.enumerate() if t.name.startswith("hotconf-listener")]


def test_initial_load_and_a_publish_seen_through_the_long_poll(devserver, make_config):
    publish(devserver, values={"timeout": "30"})
    cfg = make_config()
    assert cfg.get("timeout") == "30" and cfg.get_int("timeout") == 30
    rec = Recorder()
    cfg.on_change(rec)
    _, notification_id = publish(devserver, values={"timeout": "60"})
    wait_until(lambda: cfg.get("timeout") == "60", message="the new value")
    assert cfg.namespace().notification_id == notification_id
    wait_until(lambda: rec.events, message="the change event")
    assert rec.events[0].changes["timeout"] == ("30", "60", ChangeType.MODIFIED)
    assert cfg.namespace().release_key == devserver.state.resolve(
        "demo", "default", "application")[0].release_key


def test_unchanged_release_is_a_304_and_no_event(devserver, cache_dir):
    key, _ = publish(devserver, values={"k": "v"})
    client = ApolloClient(Settings.resolve(app_id="demo", config_service=devserver.url,
                                           cache_dir=cache_dir, environ={}))
    try:
        assert client.fetch_config("application").release_key == key
        assert client.fetch_config("application", release_key=key) is None
    finally:
        client.close()


def test_notification_for_same_content_fires_nothing(devserver, make_config):
    publish(devserver, values={"k": "v"})
    cfg = make_config()
    cfg.get("k")
    rec = Recorder()
    cfg.on_change(rec)
    publish(devserver, values={"k": "v"})  # new release key, same values
    publish(devserver, "application", {"k": "v", "marker": "1"})
    wait_until(lambda: cfg.get("marker") == "1")
    wait_until(lambda: rec.events)
    assert rec.keys() == [["marker"]]


def test_namespace_published_after_start_404_first(devserver, make_config, hotconf_logs):
    publish(devserver, values={"k": "v"})
    cfg = make_config(namespaces=["application", "late"])
    assert cfg.get("x", "fallback", namespace="late") == "fallback"
    assert cfg.namespace("late").found is False
    assert "not found (404)" in hotconf_logs.text and "publish it" in hotconf_logs.text
    rec = Recorder()
    cfg.on_change(rec, namespace="late")
    publish(devserver, "late", {"x": "1"})
    wait_until(lambda: cfg.get("x", namespace="late") == "1", message="the late namespace")
    wait_until(lambda: rec.events)
    assert rec.events[0].changes["x"].type is ChangeType.ADDED


def test_several_namespaces_share_one_long_poll(devserver, make_config):
    for ns in ("application", "db.yaml", "flags.json"):
        publish(devserver, ns, {"k": "1"} if ns == "application" else {"content": "{}"})
    cfg = make_config(namespaces=["application", "db.yaml", "flags.json"])
    cfg.get("k")
    wait_until(lambda: devserver.state.stats()["long_polls_open"] == 1)
    publish(devserver, "flags.json", {"content": '{"beta": true}'})
    wait_until(lambda: cfg.get_bool("beta", namespace="flags.json") is True)
    publish(devserver, "db.yaml", {"content": "pool: 3\n"})
    wait_until(lambda: cfg.get_int("pool", namespace="db.yaml") == 3)
    wait_until(lambda: devserver.state.stats()["long_polls_open"] == 1,
               message="the one long poll to be held again")


def test_json_and_yaml_namespaces(devserver, make_config):
    publish(devserver, "db.yaml", {"content": "db:\n  url: pg://a\n  pool: 5\n  hosts: [h1, h2]\n"})
    publish(devserver, "flags.json", {"content": '{"features": {"beta": true, "ratio": 0.5}}'})
    publish(devserver, "page.xml", {"content": "<page/>"})
    cfg = make_config(namespaces=["db.yaml", "flags.json", "page.xml"])
    db = cfg.namespace("db.yaml")
    assert db["db.url"] == "pg://a" and db.parsed["db"]["pool"] == 5
    assert cfg.get_list("db.hosts[1]", namespace="db.yaml") == ["h2"]
    assert cfg.get_json("db", namespace="db.yaml") == {"url": "pg://a", "pool": 5,
                                                       "hosts": ["h1", "h2"]}
    assert cfg.get_float("features.ratio", namespace="flags.json") == 0.5
    assert cfg.namespace("page.xml").content == "<page/>"
    rec = Recorder()
    cfg.on_change(rec, prefixes=["db."], namespace="db.yaml")
    publish(devserver, "db.yaml", {"content": "db:\n  url: pg://b\n  pool: 5\n  hosts: [h1, h2]\n"})
    wait_until(lambda: rec.events)
    assert dict(rec.events[0].changes) == {"db.url": ("pg://a", "pg://b", ChangeType.MODIFIED)}


def test_broken_yaml_release_keeps_the_last_good_one(devserver, make_config, hotconf_logs):
    publish(devserver, "db.yaml", {"content": "pool: 1\n"})
    cfg = make_config(namespaces=["application", "db.yaml"])
    assert cfg.get("pool", namespace="db.yaml") == "1"
    publish(devserver, "db.yaml", {"content": "pool: [1, 2\n"})
    wait_until(lambda: "invalid YAML" in hotconf_logs.text, message="the yaml error")
    assert cfg.get("pool", namespace="db.yaml") == "1"
    assert "keeping release" in hotconf_logs.text
    publish(devserver, "db.yaml", {"content": "pool: 2\n"})
    wait_until(lambda: cfg.get("pool", namespace="db.yaml") == "2")


def test_access_key_right_secret(devserver, make_config):
    publish(devserver, values={"k": "v"})
    devserver.state.set_secret("demo", "s3cret")
    cfg = make_config(secret="s3cret")
    assert cfg.get("k") == "v"
    publish(devserver, values={"k": "w"})
    wait_until(lambda: cfg.get("k") == "w", message="a signed long poll to deliver the change")


def test_access_key_wrong_secret_is_a_clear_error(devserver, make_config, hotconf_logs):
    publish(devserver, values={"k": "v"})
    devserver.state.set_secret("demo", "s3cret")
    cfg = make_config(secret="Zq9-not-the-key")
    with pytest.raises(ConfigUnavailableError) as info:
        cfg.get("k")
    assert "signature rejected (401 Unauthorized)" in str(info.value)
    assert "APOLLO_ACCESS_KEY_SECRET" in str(info.value)
    for secret in ("s3cret", "Zq9-not-the-key"):
        assert secret not in hotconf_logs.text and secret not in str(info.value)


def test_missing_secret_says_to_set_one(devserver, make_config):
    publish(devserver, values={"k": "v"})
    devserver.state.set_secret("demo", "s3cret")
    with pytest.raises(ConfigUnavailableError, match="requires an access key"):
        make_config().get("k")


def test_gray_release_by_label(devserver, make_config):
    publish(devserver, values={"color": "blue"})
    devserver.state.publish_gray("demo", "default", "application", {"color": "green"},
                                 labels=["canary"])
    assert make_config(label="canary").get("color") == "green"
    assert make_config(cache_dir=None).get("color") == "blue"


def test_data_center_fallback(devserver, make_config):
    publish(devserver, values={"where": "default"})
    publish(devserver, cluster="sh", values={"where": "sh"})
    cfg = make_config(data_center="sh")  # cluster follows the IDC, as in Java
    assert cfg.settings.cluster == "sh" and cfg.get("where") == "sh"
    cfg2 = make_config(cluster="c9", data_center="bj", cache_dir=None)
    assert cfg2.get("where") == "default"


def test_meta_discovery_skips_a_dead_meta_server(devserver, make_config):
    publish(devserver, values={"k": "v"})
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = make_config(server=[dead, devserver.url])
    assert cfg.get("k") == "v"


def test_config_service_failover(devserver, make_config):
    publish(devserver, values={"k": "v"})
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = make_config(config_service=f"{dead},{devserver.url}")
    assert cfg.get("k") == "v"
    assert devserver.state.stats()["requests"].get("services") is None  # no discovery


def test_discovered_list_is_refreshed(devserver, cache_dir):
    publish(devserver, values={"k": "v"})
    settings = Settings.resolve(app_id="demo", server=devserver.url, cache_dir=cache_dir,
                                refresh_interval=0.2, environ={})
    client = ApolloClient(settings)
    try:
        assert client.locator.services() == [devserver.url + "/"]
        devserver.state.advertised = ["http://127.0.0.1:1/", devserver.url + "/"]
        time.sleep(0.25)
        assert sorted(client.locator.services()) == sorted(devserver.state.advertised)
        devserver.state.advertised = []  # an empty answer keeps the previous list
        time.sleep(0.25)
        assert len(client.locator.services()) == 2
    finally:
        client.close()


def on_disk(cfg):
    """What the local cache holds, read as `hotconf dump` reads it (index, then parts)."""
    path = cfg.cache_path
    snapshot = LocalCache(path.parent, "demo", "default", key=path.stem).load()
    return dict(snapshot.namespaces["application"]) if snapshot is not None else None


def test_local_cache_is_written_atomically_and_private(devserver, make_config, cache_dir):
    publish(devserver, values={"k": "v"})
    cfg = make_config()
    cfg.get("k")
    path = cfg.cache_path
    assert path.parent == cache_dir and path.name.startswith("demo+default+")
    wait_until(path.exists, message="the cache file, written behind the first load")
    doc = json.loads(path.read_text())
    assert doc["format"] == "hotconf-snapshot/2" and "configurations" not in doc["namespaces"]["application"]
    assert on_disk(cfg) == {"k": "v"}
    parts = path.with_suffix(".parts")
    for file in [path, *parts.iterdir()]:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    for directory in (cache_dir, parts):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    publish(devserver, values={"k": "w"})
    wait_until(lambda: on_disk(cfg) == {"k": "w"}, message="the cache to follow the release")
    for directory in (cache_dir, parts):  # no temp files
        assert not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_server_down_at_start_with_cache_serves_it_and_recovers(cache_dir, hotconf_logs):
    from hotconf.devserver import DevServer

    port = free_port()
    with DevServer(port=port, hold_seconds=1) as srv:
        publish(srv, values={"k": "cached"})
        with Config(app_id="demo", server=srv.url, cache_dir=cache_dir) as warm:
            assert warm.get("k") == "cached"
    cfg = Config(app_id="demo", server=f"http://127.0.0.1:{port}", cache_dir=cache_dir,
                 backoff_max=1)
    try:
        start = time.monotonic()
        assert cfg.get("k") == "cached" and cfg.source == "cache"
        assert time.monotonic() - start < 3
        assert "from the local cache" in hotconf_logs.text
        with DevServer(port=port, hold_seconds=1) as srv:
            publish(srv, values={"k": "fresh"})
            wait_until(lambda: cfg.get("k") == "fresh", timeout=15, message="recovery")
            assert cfg.source == "remote"
    finally:
        cfg.stop()


def test_server_down_at_start_without_cache_is_a_clear_error_then_recovers(cache_dir):
    from hotconf.devserver import DevServer

    port = free_port()
    cfg = Config(app_id="demo", server=f"http://127.0.0.1:{port}", cache_dir=cache_dir,
                 backoff_max=1)
    try:
        with pytest.raises(ConfigUnavailableError) as info:
            cfg.get("k")
        message = str(info.value)
        assert f"127.0.0.1:{port}" in message and str(cache_dir) in message
        assert "connection refused" in message
        with DevServer(port=port, hold_seconds=1) as srv:
            publish(srv, values={"k": "v"})
            wait_until(lambda: cfg.source == "remote", timeout=15, message="recovery")
            assert cfg.get("k") == "v"
    finally:
        cfg.stop()


@pytest.mark.parametrize("content", [b"{not json", b"", b"\x00\xff" * 10, b'{"format": "x"}',
                                     b'{"format":"hotconf-snapshot/1","app_id":"other",'
                                     b'"cluster":"default","version":1,"created_at":1,'
                                     b'"namespaces":{}}'])
def test_corrupt_or_foreign_cache_file_is_ignored(devserver, make_config, cache_dir, hotconf_logs,
                                                  content):
    cache_dir.mkdir(mode=0o700)
    cfg = make_config()
    cfg.cache_path.write_bytes(content)
    publish(devserver, values={"k": "v"})
    assert cfg.get("k") == "v"
    assert "ignoring it" in hotconf_logs.text
    wait_until(lambda: on_disk(cfg) == {"k": "v"}, message="the cache to be written again")


def test_unwritable_cache_dir_logs_and_keeps_serving(devserver, make_config, tmp_path,
                                                    hotconf_logs):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    publish(devserver, values={"k": "v"})
    cfg = make_config(cache_dir=blocker / "cache")
    assert cfg.get("k") == "v"
    wait_until(lambda: "cannot write the local cache" in hotconf_logs.text)
    publish(devserver, values={"k": "w"})
    wait_until(lambda: cfg.get("k") == "w")
    assert hotconf_logs.text.count("cannot write the local cache") == 1  # logged once


def test_listeners_with_keys_and_prefixes_and_isolation(devserver, make_config, hotconf_logs):
    publish(devserver, values={"a": "1", "db.url": "x", "db.pool": "1"})
    cfg = make_config()
    cfg.get("a")
    everything, only_a, db, after_boom = Recorder(), Recorder(), Recorder(), Recorder()

    def boom(event):
        raise RuntimeError("listener bug")

    cfg.on_change(everything)
    cfg.on_change(boom)
    cfg.on_change(only_a, keys=["a"])
    cfg.on_change(db, prefixes=["db."])
    cfg.on_change(after_boom)
    publish(devserver, values={"a": "1", "db.url": "y", "db.pool": "2"})
    wait_until(lambda: after_boom.events and db.events)
    publish(devserver, values={"a": "2", "db.url": "y", "db.pool": "2"})
    wait_until(lambda: len(everything.events) == 2 and only_a.events)
    assert only_a.keys() == [["a"]]
    assert db.keys() == [["db.pool", "db.url"]]
    assert everything.keys() == [["db.pool", "db.url"], ["a"]]
    assert len(after_boom.events) == 2
    assert "listener bug" in hotconf_logs.text and "other listeners still run" in hotconf_logs.text


def test_listener_can_read_the_new_value_and_be_removed(devserver, make_config):
    publish(devserver, values={"k": "1"})
    cfg = make_config()
    cfg.get("k")
    seen = []

    @cfg.on_change(keys=["k"])
    def listener(event):
        seen.append(cfg.get("k"))

    publish(devserver, values={"k": "2"})
    wait_until(lambda: seen == ["2"])
    assert cfg.remove_listener(listener)
    publish(devserver, values={"k": "3"})
    wait_until(lambda: cfg.get("k") == "3")
    time.sleep(0.1)
    assert seen == ["2"]


def test_typed_getters(devserver, make_config):
    publish(devserver, values={"n": "42", "f": "1.5", "b": "Yes", "l": "a, b,,c", "j": '{"x": 1}',
                               "bad": "forty"})
    cfg = make_config()
    assert (cfg.get_int("n"), cfg.get_float("f"), cfg.get_bool("b")) == (42, 1.5, True)
    assert cfg.get_list("l") == ["a", "b", "c"] and cfg.get_json("j") == {"x": 1}
    assert cfg.get_int("missing") is None and cfg.get_int("missing", 7) == 7
    with pytest.raises(ConfigValueError) as info:
        cfg.get_int("bad")
    assert "application:bad" in str(info.value) and "integer" in str(info.value)
    assert cfg.get_int("bad", default=3) == 3
    with pytest.raises(ConfigValueError, match="JSON"):
        cfg.get_json("bad")


def test_unknown_namespace_is_a_clear_error(devserver, make_config):
    publish(devserver, values={"k": "v"})
    cfg = make_config()
    with pytest.raises(UnknownNamespaceError, match="add it to namespaces="):
        cfg.get("k", namespace="nope")
    with pytest.raises(UnknownNamespaceError):
        cfg.on_change(print, namespace="nope")


def test_context_manager_stops_the_poller(devserver, cache_dir):
    publish(devserver, values={"k": "v"})
    with Config(app_id="demo", server=devserver.url, cache_dir=cache_dir) as cfg:
        assert cfg.get("k") == "v"
    wait_until(lambda: "hotconf-poller" not in {t.name for t in threading.enumerate()},
               timeout=5, message="the poller thread to end")
    assert cfg.get("k") == "v"  # reads still answer from the last snapshot


def test_retry_backs_off_instead_of_storming(cache_dir):
    def always_500(handler):
        reply(handler, 500, b'{"status":500,"message":"boom"}')

    with ScriptedServer(always_500) as bad:
        cfg = Config(app_id="demo", config_service=bad.url, cache_dir=cache_dir)
        try:
            with pytest.raises(ConfigUnavailableError, match="HTTP 500"):
                cfg.get("k")
            time.sleep(3.6)
        finally:
            cfg.stop()
        polls = [t for t, path in bad.requests if "/notifications/v2" in path]
        # 1 s, 2 s, 4 s (+ up to 25% jitter): at most 3 polls in 3.6 s, and spaced out
        assert 2 <= len(polls) <= 3
        gaps = [b - a for a, b in zip(polls, polls[1:])]
        assert all(g >= 0.9 for g in gaps)


def test_malformed_answers_keep_the_last_good_config(devserver, cache_dir, hotconf_logs):
    publish(devserver, values={"k": "good"})
    with Config(app_id="demo", server=devserver.url, cache_dir=cache_dir) as warm:
        warm.get("k")

    def garbage(handler):
        reply(handler, 200, b"<html>proxy error</html>", "text/html")

    with ScriptedServer(garbage) as bad:
        cfg = Config(app_id="demo", config_service=bad.url, cache_dir=cache_dir)
        try:
            assert cfg.get("k") == "good"  # from the cache: the answer was not JSON
            wait_until(lambda: bad.count("/notifications/v2") >= 1)
            assert cfg.get("k") == "good"
            assert "not valid JSON" in hotconf_logs.text
        finally:
            cfg.stop()


def test_wrong_base_url_is_a_clear_error(cache_dir):
    def not_apollo(handler):
        reply(handler, 404, b"<html>Not Found</html>", "text/html")

    with ScriptedServer(not_apollo) as web:
        cfg = Config(app_id="demo", server=web.url, cache_dir=cache_dir)
        try:
            with pytest.raises(ConfigUnavailableError) as info:
                cfg.get("k")
            assert "no config service found through meta server" in str(info.value)
            assert web.url in str(info.value) and "404" in str(info.value)
        finally:
            cfg.stop()


def test_environment_variables_configure_the_client(devserver, monkeypatch, cache_dir):
    publish(devserver, values={"k": "env"})
    monkeypatch.setenv("APP_ID", "demo")
    monkeypatch.setenv("APOLLO_META", devserver.url)
    monkeypatch.setenv("APOLLO_CACHE_DIR", str(cache_dir))
    with Config() as cfg:
        assert cfg.get("k") == "env"
    assert cfg.cache_path.parent == cache_dir and cfg.cache_path.exists()


def test_stop_is_prompt_during_a_held_long_poll(devserver, cache_dir):
    devserver.state.hold_seconds = 30
    publish(devserver, values={"k": "v"})
    cfg = Config(app_id="demo", server=devserver.url, cache_dir=cache_dir)
    cfg.get("k")
    wait_until(lambda: devserver.state.stats()["long_polls_open"] == 1)
    start = time.monotonic()
    cfg.stop()
    assert time.monotonic() - start < 3


def test_cache_dir_from_environment_keeps_files_per_app_and_cluster(devserver, tmp_path):
    publish(devserver, values={"k": "1"})
    publish(devserver, cluster="c2", values={"k": "2"})
    with Config(app_id="demo", server=devserver.url, cache_dir=tmp_path) as a, \
            Config(app_id="demo", server=devserver.url, cluster="c2", cache_dir=tmp_path) as b:
        assert (a.get("k"), b.get("k")) == ("1", "2")
    names = sorted(n for n in os.listdir(tmp_path) if n.endswith(".json"))
    assert [n.rsplit("+", 1)[0] for n in names] == ["demo+c2", "demo+default"]


def test_skewed_client_clock_is_named_as_such(devserver, make_config, monkeypatch):
    from hotconf.apollo import signing

    class SkewedClock:  # this host's clock runs five minutes behind the server's
        @staticmethod
        def time():
            return time.time() - 300

    publish(devserver, values={"k": "v"})
    devserver.state.set_secret("demo", "s3cret")
    monkeypatch.setattr(signing, "time", SkewedClock)
    with pytest.raises(ConfigUnavailableError) as info:
        make_config(secret="s3cret").get("k")
    assert "RequestTimeTooSkewed" in str(info.value) and "NTP" in str(info.value)


def test_namespace_spelled_with_properties_suffix(devserver, make_config):
    publish(devserver, values={"k": "1"})
    cfg = make_config(namespaces=["application.properties"])
    assert cfg.get("k", namespace="application.properties") == "1"
    publish(devserver, values={"k": "2"})  # the notification comes back as "application"
    wait_until(lambda: cfg.get("k", namespace="application.properties") == "2")


def test_a_blocking_listener_delays_no_read_and_no_release(devserver, make_config):
    publish(devserver, values={"k": "1"})
    cfg = make_config()
    cfg.get("k")
    release = threading.Event()
    calls = []

    def slow(event):
        calls.append(event.changes["k"].new)
        release.wait(10)  # blocks its dispatcher thread, nothing else

    def reentrant(event):
        # calling back into cfg from a listener: reads, (un)registering listeners
        cfg.get("k")
        cfg.on_change(print, keys=["never"])
        cfg.remove_listener(print)

    cfg.on_change(slow)
    cfg.on_change(reentrant)
    publish(devserver, values={"k": "2"})
    wait_until(lambda: calls == ["2"])
    publish(devserver, values={"k": "3"})
    wait_until(lambda: cfg.get("k") == "3", timeout=5, message="reads to move on")
    release.set()
    wait_until(lambda: calls == ["2", "3"], timeout=5, message="the queued event")
