"""The file store's watch: readers hear about new snapshots, and not about each other's reads."""

import os
import statistics
import threading
import time

import pytest

from hotconf.cache import LocalCache
from hotconf.snapshot import NamespaceSnapshot, Snapshot
from hotconf.stores import FileStore, watch
from tests.helpers import wait_until


def snapshot(version, value):
    return Snapshot("a", "default", {"application": NamespaceSnapshot("application", {"k": value},
                                                                      f"r{version}")}, version)


@pytest.fixture(params=["inotify", "watchdog"])
def watcher(request, monkeypatch):
    """Both ways of watching: inotify directly (Linux), watchdog (elsewhere)."""
    monkeypatch.setattr(watch, "_use_inotify", lambda: request.param == "inotify")
    return request.param


def test_watch_fires_on_publish_but_not_on_reads(tmp_path, watcher):
    cache = LocalCache(tmp_path, "a", "default", "a+default+x")
    writer, reader = FileStore(cache), FileStore(LocalCache(tmp_path, "a", "default", "a+default+x"))
    writer.publish(snapshot(1, "v1"))
    calls = []
    reader.watch(lambda: calls.append(time.monotonic()))
    try:
        time.sleep(0.2)
        for _ in range(20):  # what readers do when told: read the file
            assert reader.latest().version == 1
        time.sleep(0.5)
        assert calls == [], "reading the file must not look like a change"
        writer.publish(snapshot(2, "v2"))
        wait_until(lambda: calls, timeout=5, message="the watch to fire")
        assert reader.latest().namespaces["application"]["k"] == "v2"
    finally:
        reader.close()


def test_a_release_is_heard_at_once_and_the_lock_file_wakes_nobody(tmp_path, watcher):
    """A replaced index is reported within milliseconds, and standbys opening the poller's
    lock file in the same directory are not taken for a release."""
    cache = LocalCache(tmp_path, "a", "default", "a+default+x")
    writer, reader = FileStore(cache), FileStore(LocalCache(tmp_path, "a", "default", "a+default+x"))
    writer.publish(snapshot(1, "v1"))
    heard = []
    reader.watch(lambda: heard.append(time.monotonic()))
    try:
        time.sleep(0.1)
        for _ in range(50):  # what a standby does with the lock file
            os.close(os.open(tmp_path / "a+default+x.poller.lock", os.O_RDWR | os.O_CREAT))
        time.sleep(0.3)
        assert heard == []
        delays = []
        for version in range(2, 22):
            before = len(heard)
            sent = time.monotonic()
            writer.publish(snapshot(version, f"v{version}"))
            wait_until(lambda b=before: len(heard) > b, timeout=5, interval=0.001,
                       message="the watch to fire")
            delays.append(heard[before] - sent)
        # generous: watchdog may hold a rename's first half for up to 0.5 s to pair it
        assert max(delays) < 1.0 and statistics.median(delays) < 0.05, delays
    finally:
        reader.close()


def test_versions_only_move_forward(tmp_path):
    store = FileStore(LocalCache(tmp_path, "a", "default", "a+default+x"))
    assert store.publish(snapshot(5, "new"))
    assert not store.publish(snapshot(4, "old"))
    assert not store.publish(snapshot(5, "same version"))
    assert store.latest().namespaces["application"]["k"] == "new"


def test_concurrent_publishers_never_tear_or_regress(tmp_path):
    stores = [FileStore(LocalCache(tmp_path, "a", "default", "a+default+x")) for _ in range(4)]
    errors = []

    def publish_many(store, offset):
        for v in range(offset, 200, 4):
            store.publish(snapshot(v + 1, f"v{v + 1}"))
            latest = store.latest()
            if latest is None:
                errors.append("torn or missing file")

    threads = [threading.Thread(target=publish_many, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert stores[0].latest().version == 200


def test_two_pollers_after_a_lock_partition_converge_and_never_regress(devserver, tmp_path):
    """Both believe they poll and publish into the same file. Poller A, stale and far ahead in
    version numbers (an hour of clock ahead), writes behind poller B's back. Versions never go
    back, and the file ends on the newest release instead of being stuck behind A's numbers."""
    from hotconf.options import Settings
    from hotconf.process.poller import Poller

    devserver.state.publish("demo", "default", "application", {"k": "fresh-0"})
    settings = Settings.resolve(app_id="demo", server=devserver.url, cache_dir=tmp_path,
                                environ={})
    cache = LocalCache.for_settings(settings)
    seen = []
    watcher = FileStore(LocalCache.for_settings(settings))
    poller_b = Poller(settings, FileStore(LocalCache.for_settings(settings)))
    try:
        poller_b.load_initial()
        poller_b.start()
        watcher.watch(lambda: seen.append(watcher.latest().version))
        ahead = cache.load().version + 3600 * 10**6  # versions are the clock in microseconds
        stale = Snapshot("demo", "default", {"application": NamespaceSnapshot(
            "application", {"k": "stale"}, "old-release")}, ahead)
        assert FileStore(LocalCache.for_settings(settings)).publish(stale)  # poller A
        for i in range(1, 4):
            devserver.state.publish("demo", "default", "application", {"k": f"fresh-{i}"})
            time.sleep(0.1)
        wait_until(lambda: cache.load().namespaces["application"]["k"] == "fresh-3", timeout=10,
                   message="the newest release in the shared file")
    finally:
        poller_b.stop()
        watcher.close()
    assert seen == sorted(seen), f"versions went back: {seen}"
    assert cache.load().version > ahead
