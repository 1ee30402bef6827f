"""A one-namespace release costs one part: the cache file and the uWSGI cache hold a small index
and one part per namespace, and readers decode only the parts of namespaces that changed."""

import json
import threading

import pytest

from hotconf.cache import LocalCache
from hotconf.errors import MissingPartError, ProtocolError, SnapshotTooLargeError
from hotconf.snapshot import NamespaceSnapshot, Snapshot
from hotconf.stores.file import FileStore
from hotconf.stores.uwsgi import UwsgiCacheStore

NAMES = [f"ns{i}" for i in range(5)]


def snapshot(version, changed=None, base=None):
    if base is None:
        namespaces = {n: NamespaceSnapshot(n, {f"k{j}": f"{n}-{j}" for j in range(50)}, "r0")
                      for n in NAMES}
        return Snapshot("app", "default", namespaces, version)
    return base.replace({changed: NamespaceSnapshot(changed, {"k": f"v{version}"}, f"r{version}")},
                        version=version)


class CountingCache(LocalCache):
    def __init__(self, *args):
        super().__init__(*args)
        self.parts_read = []

    def _read_part(self, namespace, digest):
        self.parts_read.append(namespace)
        return super()._read_part(namespace, digest)


def test_index_and_parts_round_trip_and_a_one_document_cache_is_still_read():
    s = Snapshot("a", "c", {"application": NamespaceSnapshot("application", {"k": "v"}, "r1"),
                            "db.yaml": NamespaceSnapshot("db.yaml", {"content": "a: 1\n"}, "r2"),
                            "gone": NamespaceSnapshot.missing("gone")}, version=7)
    parts = s.parts()
    back = Snapshot.decode(s.index_json(), lambda name, digest: parts.get(digest))
    assert back.version == 7 and back.release_keys == s.release_keys
    assert dict(back.namespaces["db.yaml"]) == {"a": "1"} and not back.namespaces["gone"].found
    assert len(s.index_json()) < 600  # the index carries no configurations
    old = Snapshot.decode(s.to_json(), lambda name, digest: None)  # hotconf 0.1's cache file
    assert old.release_keys == s.release_keys and old.namespaces["application"]["k"] == "v"


def test_a_part_that_is_gone_or_another_release_is_noticed():
    s = snapshot(1)
    with pytest.raises(MissingPartError):
        Snapshot.decode(s.index_json(), lambda name, digest: None)
    with pytest.raises(MissingPartError):  # a newer release's part under the same key
        Snapshot.decode(s.index_json(), lambda name, digest: b'{"k":"other"}')
    with pytest.raises(ProtocolError):
        Snapshot.decode(b'{"format":"hotconf-snapshot/2"}', lambda name, digest: None)


def test_a_second_look_at_the_snapshot_a_reader_holds_decodes_nothing(tmp_path):
    """The cache file's event after the uWSGI push brought the same release: the reader finds
    its own version in the index and keeps what it holds (no part, no new snapshot); a
    snapshot of another app, or a newer one, is still decoded."""
    writer, reader = LocalCache(tmp_path, "app", "default"), CountingCache(tmp_path, "app", "default")
    first = snapshot(1)
    writer.save(first)
    held = reader.load()
    reader.parts_read.clear()
    assert reader.load(held) is held and reader.parts_read == []
    assert Snapshot.decode(first.index_json(), reader._read_part, previous=held) is held
    other = Snapshot("other", "default", dict(held.namespaces), 1)
    assert Snapshot.decode(first.index_json(), reader._read_part, previous=other) is not other
    writer.save(snapshot(2, "ns3", first))
    assert reader.load(held).version == 2 and reader.parts_read == ["ns3"]


def test_a_file_store_publish_reads_the_index_on_disk_once(tmp_path):
    """The compare-and-swap and the save share one read of the old index (they read it two
    and three times, on the way to the rename every reader waits for)."""
    class Reads(LocalCache):
        index_reads = 0

        def _read(self, path, what):
            if path == self.path:
                Reads.index_reads += 1
            return super()._read(path, what)

    store = FileStore(Reads(tmp_path, "app", "default"))
    first = snapshot(1)
    store.publish(first)
    Reads.index_reads = 0
    assert store.publish(snapshot(2, "ns3", first))
    assert Reads.index_reads == 1
    assert store.cache.load().version == 2


def test_a_one_namespace_release_writes_one_part_and_readers_decode_one(tmp_path):
    writer, reader = LocalCache(tmp_path, "app", "default"), CountingCache(tmp_path, "app", "default")
    first = snapshot(1)
    assert writer.save(first)
    held = reader.load()
    assert sorted(reader.parts_read) == NAMES and held.version == 1
    parts_before = {p.name: p.stat().st_mtime_ns for p in writer.parts_dir.iterdir()}

    second = snapshot(2, "ns3", first)
    assert writer.save(second)
    parts_after = {p.name: p.stat().st_mtime_ns for p in writer.parts_dir.iterdir()}
    new = set(parts_after) - set(parts_before)
    assert len(new) == 1  # one part written...
    assert all(parts_after[n] == parts_before[n] for n in parts_before)  # ...none rewritten

    reader.parts_read.clear()
    newer = reader.load(held)
    assert reader.parts_read == ["ns3"]  # one part read and parsed
    assert newer.namespaces["ns3"]["k"] == "v2"
    assert all(newer.namespaces[n] is held.namespaces[n] for n in NAMES if n != "ns3")


def test_the_publishing_process_takes_a_release_in_before_the_directory_fsync(tmp_path,
                                                                              monkeypatch):
    """The file store's own process is delivered the snapshot once the index is in place, as
    the other processes are; the cache directory's fsync (0.1-0.3 s when the disk stalls)
    still happens, after it, and before publish returns."""
    import hotconf.cache as cache_module

    synced = []
    real_fsync_dir = cache_module._fsync_dir
    monkeypatch.setattr(cache_module, "_fsync_dir",
                        lambda path: (synced.append(path), real_fsync_dir(path)))
    store = FileStore(LocalCache(tmp_path, "app", "default"))
    seen = []
    store.subscribe(lambda s: seen.append((s.version, synced.count(tmp_path),
                                           store.cache.version())))
    first = snapshot(1)
    store.publish(first)
    store.publish(snapshot(2, "ns1", first))
    assert [version for version, _, _ in seen] == [1, 2]
    for version, dir_syncs_then, on_disk in seen:
        assert on_disk == version  # in place: every process can read it
        assert dir_syncs_then == version - 1  # this publish's directory fsync was still to come
    assert synced.count(tmp_path) == 2  # ...and came, once per publish


def test_parts_of_the_previous_index_stay_for_readers_still_on_it(tmp_path):
    cache = LocalCache(tmp_path, "app", "default")
    s1 = snapshot(1)
    s2 = snapshot(2, "ns0", s1)
    s3 = snapshot(3, "ns0", s2)
    for s in (s1, s2, s3):
        assert cache.save(s)
    names = {p.name for p in cache.parts_dir.iterdir()}
    assert s2.namespaces["ns0"].digest + ".json" in names  # the previous index's part
    assert s1.namespaces["ns0"].digest + ".json" not in names  # older: removed
    assert len(names) == len(NAMES) + 1


def test_a_reader_on_a_stale_index_reads_the_new_one(tmp_path):
    cache = LocalCache(tmp_path, "app", "default")
    s1 = snapshot(1)
    cache.save(s1)
    stale_index = cache.path.read_bytes()
    s3 = snapshot(3, "ns1", snapshot(2, "ns1", s1))
    cache.save(snapshot(2, "ns1", s1))
    cache.save(s3)  # s1's ns1 part is gone now

    calls = []
    real_read = cache._read

    def read(path, what):
        calls.append(path)
        if path == cache.path and len(calls) == 1:
            return stale_index  # this reader read the index before the two releases
        return real_read(path, what)

    cache._read = read
    loaded = cache.load()
    assert loaded.version == 3 and loaded.namespaces["ns1"]["k"] == "v3"


def test_a_part_a_tmp_cleaner_removed_is_written_again(tmp_path, caplog):
    cache = LocalCache(tmp_path, "app", "default")
    store = FileStore(cache)
    s1 = snapshot(1)
    assert store.publish(s1)
    victim = cache.parts_dir / (s1.namespaces["ns2"].digest + ".json")
    victim.unlink()
    assert not store.holds(s1)
    assert cache.load() is None and "incomplete" in caplog.text  # readers keep what they hold
    assert store.publish(s1)  # the poller's guard publishes what it holds again
    assert store.holds(s1) and cache.load().version == 1
    assert not store.publish(s1)  # and not again once it is whole


def test_a_corrupt_part_costs_nothing_but_a_warning(tmp_path, caplog):
    cache = LocalCache(tmp_path, "app", "default")
    s1 = snapshot(1)
    cache.save(s1)
    (cache.parts_dir / (s1.namespaces["ns0"].digest + ".json")).write_bytes(b"{not json")
    assert cache.load() is None
    assert "incomplete" in caplog.text or "corrupt" in caplog.text


class FakeUwsgi:
    """The four calls of the uwsgi module the store uses, with a cache of bounded items."""

    def __init__(self, items=64, blocksize=1 << 20):
        self.values, self.items, self.blocksize = {}, items, blocksize
        self.updates, self.gets = [], []
        self._lock = threading.Lock()

    def lock(self):
        self._lock.acquire()

    def unlock(self):
        self._lock.release()

    def cache_get(self, key, cache):
        self.gets.append(key)
        return self.values.get(key)

    def cache_update(self, key, value, expires, cache):
        if len(value) > self.blocksize or (key not in self.values and len(self.values) >= self.items):
            return None
        self.updates.append(key)
        self.values[key] = value
        return True


class NoPush:
    def notify(self):
        pass

    def add(self, callback):
        return True

    def remove(self, callback):
        pass


def uwsgi_store(api):
    return UwsgiCacheStore(api, NoPush(), "hotconf", "app+default", 1 << 20)


def test_uwsgi_cache_one_namespace_release_updates_and_decodes_one_part():
    api = FakeUwsgi()
    poller, reader = uwsgi_store(api), uwsgi_store(api)
    s1 = snapshot(1)
    assert poller.publish(s1)
    held = reader.latest()
    assert held.version == 1
    api.updates.clear()
    api.gets.clear()
    assert poller.publish(snapshot(2, "ns4", s1))
    assert sorted(api.updates) == ["app+default", "app+default:part:ns4", "app+default:version"]
    newer = reader.latest(held)
    assert [k for k in api.gets if ":part:" in k] == ["app+default:part:ns4"]
    assert newer.namespaces["ns4"]["k"] == "v2" and newer.namespaces["ns0"] is held.namespaces["ns0"]
    assert not poller.publish(snapshot(2, "ns4", s1))  # versions only move forward


def test_uwsgi_cache_part_replaced_during_a_read_is_noticed():
    api = FakeUwsgi()
    store = uwsgi_store(api)
    s1 = snapshot(1)
    store.publish(s1)
    stale = api.values["app+default"]
    store.publish(snapshot(2, "ns0", s1))
    real_get = api.cache_get
    served = []

    def get(key, cache):
        if key == "app+default" and not served:
            served.append(1)
            return stale
        return real_get(key, cache)

    api.cache_get = get
    assert store.latest().version == 2  # read the stale index, met a newer part, read again


def test_uwsgi_cache_too_small_says_how_many_items_and_bytes():
    store = uwsgi_store(FakeUwsgi(items=3))
    with pytest.raises(SnapshotTooLargeError) as err:
        store.publish(snapshot(1))
    assert "items=" in str(err.value) and "7 items" in str(err.value)


def test_another_writer_makes_the_poller_write_every_part_again():
    api = FakeUwsgi()
    mine, theirs = uwsgi_store(api), uwsgi_store(api)
    s1 = snapshot(1)
    mine.publish(s1)
    other = Snapshot("app", "default", {n: NamespaceSnapshot(n, {"x": "1"}, "o") for n in NAMES}, 5)
    theirs.publish(other)
    api.updates.clear()
    mine.publish(snapshot(6, "ns0", s1))
    assert len([k for k in api.updates if ":part:" in k]) == len(NAMES)
    assert json.loads(api.values["app+default"])["version"] == 6
    assert uwsgi_store(api).latest().namespaces["ns1"]["k0"] == "ns1-0"


class CountingPush(NoPush):
    def __init__(self):
        self.sent = 0

    def notify(self):
        self.sent += 1


def test_a_snapshot_too_large_for_the_cache_still_reaches_readers_through_the_file():
    """Readers follow the version marker: it changes (naming the file) and the push goes out,
    so they read the release from the cache file behind this store."""
    api, push = FakeUwsgi(blocksize=600), CountingPush()
    store = UwsgiCacheStore(api, push, "hotconf", "app+default", 600)
    small = Snapshot("app", "default", {"application": NamespaceSnapshot("application", {"k": "v"}, "r1")}, 1)
    assert store.publish(small) and push.sent == 1
    before = store.token()
    with pytest.raises(SnapshotTooLargeError):
        store.publish(snapshot(2))
    assert store.token() != before and store.token() == b"file:2" and push.sent == 2
    assert store.latest().version == 1  # the layered store reads the file for v2
    assert not store.publish(small)  # versions still only move forward past the marker
    newer = small.replace({}, version=3)
    assert store.publish(newer) and store.token() == b"3"


def test_a_part_changed_by_hand_is_written_again_by_the_next_poller(tmp_path):
    first = LocalCache(tmp_path, "app", "default")
    s1 = snapshot(1)
    first.save(s1)
    part = first.parts_dir / (s1.namespaces["ns1"].digest + ".json")
    forged = bytearray(part.read_bytes())
    forged[2:5] = b"BAD"  # same size: only the bytes tell
    part.write_bytes(bytes(forged))
    assert first.load() is None  # readers refuse it (the digest does not match)
    restarted = LocalCache(tmp_path, "app", "default")  # a new poller process
    restarted.save(s1)
    assert restarted.load().namespaces["ns1"]["k1"] == "ns1-1"


def test_a_link_planted_as_a_part_does_not_count_as_the_part(tmp_path):
    cache = LocalCache(tmp_path, "app", "default")
    s1 = snapshot(1)
    cache.save(s1)
    part = cache.parts_dir / (s1.namespaces["ns0"].digest + ".json")
    target = tmp_path / "elsewhere.json"
    target.write_bytes(part.read_bytes())
    part.unlink()
    part.symlink_to(target)
    assert not cache.holds(s1)
    cache.save(s1)
    assert not part.is_symlink() and cache.load().version == 1


def test_the_caches_of_earlier_versions_are_read_until_ours_exists(tmp_path):
    from hotconf.options import Settings

    settings = Settings.resolve(app_id="app", config_service="http://x", cache_dir=tmp_path,
                                environ={})
    generation_2, generation_0_1 = settings.earlier_instance_keys
    assert len({settings.instance_key, generation_2, generation_0_1}) == 3  # apart, each polled
    old = snapshot(1)
    (tmp_path / f"{generation_0_1}.json").write_bytes(old.to_json())  # one document
    cache = LocalCache.for_settings(settings)
    assert cache.load().namespaces["ns0"]["k0"] == "ns0-0"

    LocalCache(tmp_path, "app", "default", generation_2).save(snapshot(2, "ns1", old))
    assert cache.load().namespaces["ns1"]["k"] == "v2"  # the newer generation first

    newest = snapshot(3, "ns0", cache.load())
    assert cache.save(newest)
    assert cache.load().version == 3 and cache.load().namespaces["ns0"]["k"] == "v3"
    assert (tmp_path / f"{generation_2}.json").exists()  # left for a rollback


def test_a_refused_snapshot_is_not_put_back_on_every_wake():
    """A cache too small even for the version marker: the guard must not take the refusal for
    a lost copy (it would republish and push to every worker after each release)."""
    api = FakeUwsgi(items=0)
    store = uwsgi_store(api)
    s1 = snapshot(1)
    with pytest.raises(SnapshotTooLargeError) as err:
        store.publish(s1)
    assert "the cache is full" in str(err.value) and "items=" in str(err.value)
    assert store.token() is None and store.holds(s1)
    assert not store.holds(snapshot(2, "ns0", s1))


def test_a_version_the_front_sends_readers_to_the_file_for_is_on_the_file(tmp_path):
    """Too large for the uWSGI cache: the marker names the file's version. A new snapshot
    with the same releases (only notification ids moved) must still be written there, or
    readers find an older version and keep looking (a 2 s retry forever)."""
    from hotconf.stores.layered import LayeredStore

    api = FakeUwsgi(blocksize=600)
    front = UwsgiCacheStore(api, NoPush(), "hotconf", "app+default", 600)
    store = LayeredStore(front, LocalCache(tmp_path, "app", "default"), watch_file=False)
    first = snapshot(1)
    with pytest.raises(SnapshotTooLargeError):
        store.publish(first)
    moved = first.replace({n: ns.with_notification_id(7) for n, ns in first.namespaces.items()},
                          version=2)
    assert moved.same_releases(first)
    with pytest.raises(SnapshotTooLargeError):
        store.publish(moved)
    assert front.version() == 2 and store.version() == 2
    reader = LayeredStore(UwsgiCacheStore(api, NoPush(), "hotconf", "app+default", 600),
                          LocalCache(tmp_path, "app", "default"), watch_file=False)
    assert reader.latest(first).version == 2


def test_a_cache_file_past_the_size_limit_is_ignored_not_read_whole(tmp_path, monkeypatch,
                                                                   caplog):
    import hotconf.cache as cache_module

    cache = LocalCache(tmp_path, "app", "default")
    s = snapshot(1)
    cache.save(s)
    assert cache.load().release_keys == s.release_keys
    largest = max(len(data) for data in [s.index_json(), *s.parts().values()])
    monkeypatch.setattr(cache_module, "MAX_CACHE_BYTES", largest - 1)
    assert cache.load() is None  # the largest file is one byte over
    assert "larger than" in caplog.text
    monkeypatch.setattr(cache_module, "MAX_CACHE_BYTES", largest)
    assert cache.load().release_keys == s.release_keys  # at the limit: read
    cache.path.write_bytes(b"")
    assert cache.load() is None  # empty: not a snapshot, and no error


def test_a_one_key_release_of_a_big_namespace_reads_no_part_in_either_store(tmp_path):
    big = {f"key.{j:03d}": "y" * 96 for j in range(500)}
    s1 = Snapshot("app", "default", {n: NamespaceSnapshot(n, big | {"k": "v1"}, "r1")
                                     for n in NAMES}, 1)
    s2 = s1.replace({"ns2": NamespaceSnapshot("ns2", big | {"k": "v2"}, "r2")}, version=2)

    writer, reader = LocalCache(tmp_path, "app", "default"), CountingCache(tmp_path, "app", "default")
    writer.save(s1)
    held = reader.load()
    writer.save(s2)
    reader.parts_read.clear()
    newer = reader.load(held)
    assert reader.parts_read == [] and newer.namespaces["ns2"]["k"] == "v2"
    assert CountingCache(tmp_path, "app", "default").load().namespaces["ns2"]["k"] == "v2"

    api = FakeUwsgi()
    poller, store_reader = uwsgi_store(api), uwsgi_store(api)
    poller.publish(s1)
    held = store_reader.latest()
    poller.publish(s2)
    api.gets.clear()
    newer = store_reader.latest(held)
    assert [k for k in api.gets if ":part:" in k] == [] and newer.namespaces["ns2"]["k"] == "v2"


def test_an_index_too_large_for_the_uwsgi_cache_with_its_deltas_goes_without_them():
    small = {f"k{j}": f"v{j}" for j in range(8)}
    s1 = Snapshot("app", "default", {f"n{i:02d}": NamespaceSnapshot(f"n{i:02d}", small, "r1")
                                     for i in range(30)}, 1)
    s2 = s1.replace({"n00": NamespaceSnapshot("n00", small | {"k0": "new"}, "r2")}, version=2)
    room = len(s2.index_json(deltas=False)) + 16  # (created_at may print a digit longer)
    assert len(s2.index_json()) > room >= max(len(p) for p in s2.parts().values())
    api = FakeUwsgi(blocksize=room)  # room for the index without its deltas, not with
    poller, reader = (UwsgiCacheStore(api, NoPush(), "hotconf", "app+default", api.blocksize)
                      for _ in range(2))
    assert poller.publish(s1)
    held = reader.latest()
    assert poller.publish(s2)  # not refused as too large
    assert reader.latest(held).namespaces["n00"]["k0"] == "new"


def test_parts_as_the_server_sent_them_are_stored_as_they_are_and_published_again_whole(tmp_path):
    """The poller stores a namespace's configurations as the server formatted them; a process
    that decoded them (then took over polling) publishes its own encoding under its own name."""
    sent = {n: json.dumps({"k": f"{n} \u00e9t\u00e9", "x": "1"}, indent=1).encode() for n in NAMES}
    s1 = Snapshot("app", "default", {n: NamespaceSnapshot(n, json.loads(sent[n]), "r1",
                                                          part=sent[n]) for n in NAMES}, 1)
    poller_cache = LocalCache(tmp_path / "a", "app", "default")
    assert poller_cache.save(s1)
    assert {p.read_bytes() for p in poller_cache.parts_dir.iterdir()} == set(sent.values())
    held = poller_cache.load()
    assert dict(held.namespaces["ns1"]) == json.loads(sent["ns1"])

    promoted = held.replace({"ns0": NamespaceSnapshot("ns0", {"k": "new", "x": "1"}, "r2")},
                            version=2)
    for store_dir in ("a", "b"):  # over the same cache, and into an empty one
        cache = LocalCache(tmp_path / store_dir, "app", "default")
        assert cache.save(promoted)
        loaded = CountingCache(tmp_path / store_dir, "app", "default").load()
        assert loaded is not None and loaded.version == 2
        assert {n: dict(ns) for n, ns in loaded.namespaces.items()} == \
            {n: dict(ns) for n, ns in promoted.namespaces.items()}
    api = FakeUwsgi()
    uwsgi_store(api).publish(promoted)
    assert uwsgi_store(api).latest().namespaces["ns3"]["k"] == "ns3 \u00e9t\u00e9"
