"""The poller's protocol rules, driven step by step through a fake Apollo and a manual clock:
no sockets, no threads, no sleeping."""

from __future__ import annotations

import time

import pytest

from hotconf.snapshot import NamespaceSnapshot, Snapshot
from hotconf.stores import MemoryStore
from hotconf.testing import ManualClock
from tests.fakes import FakeApollo, make_poller


@pytest.fixture
def clock():
    return ManualClock()


def test_first_load_fetches_and_publishes_version_1(apollo, clock, tmp_path):
    poller, store = make_poller(apollo, clock, tmp_path)
    snapshot = poller.load_initial()
    assert snapshot.version > 0 and snapshot.namespaces["application"]["k"] == "v1"
    assert store.latest() is snapshot
    assert apollo.fetches()[0].query.get("releaseKey") is None


def test_a_notification_advances_the_id_only_after_the_fetch_succeeded(apollo, clock, tmp_path):
    poller, store = make_poller(apollo, clock, tmp_path)
    poller.load_initial()
    poller.step()  # learns the server's id for application
    first_id = apollo.polled_ids()["application"]
    assert first_id == -1
    poller.step()
    known = apollo.polled_ids()["application"]
    assert known == apollo.releases["application"][2]

    apollo.publish("application", {"k": "v2"})
    apollo.fail_next("/configs/", 500)
    poller.step()  # notified, but the fetch fails: the id must stay behind
    assert store.latest().namespaces["application"]["k"] == "v1"
    poller.step()  # the old id again, so the server answers at once and the fetch is retried
    assert apollo.polled_ids()["application"] == known
    assert store.latest().namespaces["application"]["k"] == "v2"
    poller.step()
    assert apollo.polled_ids()["application"] == apollo.releases["application"][2]


def test_ids_go_back_to_minus_one_after_a_failed_poll(apollo, clock, tmp_path):
    poller, store = make_poller(apollo, clock, tmp_path)
    poller.load_initial()
    poller.step()
    poller.step()
    assert apollo.polled_ids()["application"] > 0
    apollo.fail_next("/notifications/v2", "down")
    poller.step()
    poller.step()
    assert apollo.polled_ids()["application"] == -1
    # ...and the refetch this triggers carries the release key: a 304, no new snapshot
    before = store.latest().version
    poller.step()
    assert apollo.fetches()[-1].query["releaseKey"] == apollo.releases["application"][0]
    assert store.latest().version == before


def test_a_304_fetch_publishes_nothing_and_a_304_poll_is_a_success(apollo, clock, tmp_path):
    poller, store = make_poller(apollo, clock, tmp_path)
    poller.load_initial()
    poller.step()  # the first poll learns the server's id: the snapshot carries it
    learned = store.latest()
    assert learned.namespaces["application"].notification_id == apollo.releases["application"][2]
    for _ in range(3):
        poller.step()
    assert store.latest() is learned  # 304 polls publish nothing
    assert clock.sleeps == []  # no failure, no backoff


def test_a_release_fetched_early_still_ends_with_its_own_notification_id(clock, tmp_path):
    """A fetch after notification N can return release N+1 (published in between); N+1's own
    notification then meets a 304, and the snapshot must still carry N+1's id."""
    apollo = FakeApollo()
    apollo.publish("application", {"k": "v1"})
    poller, store = make_poller(apollo, clock, tmp_path)
    poller.load_initial()
    poller.step()
    poller.step()
    apollo.publish("application", {"k": "v2"})
    real = apollo.transport.handler

    def publish_v3_before_the_fetch(request):
        if request.path.startswith("/configs/") and apollo.releases["application"][1]["k"] == "v2":
            apollo.publish("application", {"k": "v3"})
        return real(request)

    apollo.transport.handler = publish_v3_before_the_fetch
    poller.step()  # notified of v2, fetches v3
    poller.step()  # notified of v3: 304
    ns = store.latest().namespaces["application"]
    assert ns["k"] == "v3" and ns.notification_id == apollo.releases["application"][2]


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets_on_success(apollo, clock, tmp_path):
    poller, _ = make_poller(apollo, clock, tmp_path, backoff_initial=1.0, backoff_max=8.0)
    poller.load_initial()
    for _ in range(6):
        apollo.fail_next("/notifications/v2", "down")
        poller.step()
    nominal = [1, 2, 4, 8, 8, 8]
    assert len(clock.sleeps) == 6
    for slept, base in zip(clock.sleeps, nominal):
        assert base <= slept <= min(8.0, base * 1.25)
    poller.step()  # success
    apollo.fail_next("/notifications/v2", "down")
    poller.step()
    assert 1.0 <= clock.sleeps[-1] <= 1.25


def test_a_404_namespace_does_not_stop_the_others(clock, tmp_path):
    apollo = FakeApollo()
    apollo.publish("application", {"k": "v"})
    poller, _ = make_poller(apollo, clock, tmp_path, namespaces=["application", "missing"])
    snapshot = poller.load_initial()
    assert snapshot.namespaces["application"]["k"] == "v"
    assert not snapshot.namespaces["missing"].found


def test_the_periodic_refresh_finds_an_unannounced_release_and_resets_ids(apollo, clock, tmp_path):
    poller, store = make_poller(apollo, clock, tmp_path, refresh_interval=300)
    poller.load_initial()
    poller.step()
    poller.step()
    assert apollo.polled_ids()["application"] > 0
    key, confs, nid = apollo.releases["application"]
    apollo.releases["application"] = ("r-silent", {"k": "silent"}, nid)  # no new id
    clock.advance(301)
    poller.step()
    assert store.latest().namespaces["application"]["k"] == "silent"
    assert apollo.polled_ids()["application"] == -1


def test_a_poller_behind_the_store_overtakes_instead_of_being_refused(apollo, clock, tmp_path):
    """Another poller (a lock partition) published v50 with other releases: ours must not be
    refused forever, it continues above v50."""
    store = MemoryStore()
    other = Snapshot("demo", "default",
                     {"application": NamespaceSnapshot("application", {"k": "old"}, "r-old")}, 50)
    poller, _ = make_poller(apollo, clock, tmp_path, store=store)
    store.publish(other)
    poller.load_initial()
    assert store.latest().version > 50
    assert store.latest().namespaces["application"]["k"] == "v1"


def test_an_unparsable_release_keeps_the_last_good_one(clock, tmp_path):
    apollo = FakeApollo()
    apollo.publish("db.json", {"content": '{"url": "a"}'})
    poller, store = make_poller(apollo, clock, tmp_path, namespaces=["db.json"])
    poller.load_initial()
    poller.step()
    apollo.publish("db.json", {"content": "{not json"})
    poller.step()
    assert store.latest().namespaces["db.json"]["url"] == "a"


def test_a_restart_from_the_cache_continues_the_version_sequence(apollo, clock, tmp_path):
    poller, store = make_poller(apollo, clock, tmp_path)
    first = poller.load_initial().version
    apollo.publish("application", {"k": "v2"})
    poller.step()
    poller.step()
    second = store.latest().version
    assert second > first
    # a new poller on the same host (fresh memory, same cache file) starts above it
    again, store2 = make_poller(apollo, clock, tmp_path)
    assert again.load_initial().version > second
    assert store2.latest().namespaces["application"]["k"] == "v2"


def test_a_takeover_polls_first_and_fetches_what_the_poll_names(apollo, clock, tmp_path):
    """A process that serves the host's snapshot and takes over polling fetches nothing before
    its first poll (ids at -1, answered at once): a release published while nobody polled is
    fetched once, after it, and the next poll carries the server's ids (it would be held)."""
    old, store = make_poller(apollo, clock, tmp_path)
    old.load_initial()
    old.step()
    old.step()  # the old poller's ids are the server's
    held = store.latest()
    assert store.flush()  # the file, written behind the push, is the host's store here
    apollo.publish("application", {"k": "v2"})  # the old poller is gone before it hears of it
    new, store2 = make_poller(apollo, clock, tmp_path)  # (same cache file: the host's store)
    before = len(apollo.requests)
    assert new.load_initial(held).version == held.version
    assert apollo.requests[before:] == []  # nothing fetched yet: the host serves held meanwhile
    new.step()
    assert apollo.polled_ids()["application"] == -1
    assert len(apollo.fetches()) - sum(1 for r in apollo.requests[:before]
                                       if r.path.startswith("/configs/")) == 1
    latest = store2.latest()
    assert latest.namespaces["application"]["k"] == "v2" and latest.newer_than(held)
    new.step()
    assert apollo.polled_ids()["application"] == apollo.releases["application"][2]


def test_a_first_start_still_fetches_before_it_polls(apollo, clock, tmp_path):
    """Without a snapshot this process serves (a first start, even with a cache file from an
    earlier run), the first load is the config service's: an app reading at import never
    gets yesterday's cache while Apollo answers."""
    old, _ = make_poller(apollo, clock, tmp_path)
    old.load_initial()
    apollo.publish("application", {"k": "v2"})
    new, _ = make_poller(apollo, clock, tmp_path)
    assert new.load_initial().namespaces["application"]["k"] == "v2"


def test_versions_survive_the_loss_of_every_file(apollo, clock, tmp_path):
    """The cache file is deleted and the poller replaced: the new poller's first snapshot must
    still be newer than what every process holds, or they would ignore releases."""
    import shutil

    old, old_store = make_poller(apollo, clock, tmp_path / "a")
    old.load_initial()
    for i in range(5):
        apollo.publish("application", {"k": f"v{i}"})
        old.step()
    held = old_store.latest()
    assert old_store.flush()  # (else the write behind would make the files again)
    shutil.rmtree(tmp_path / "a")
    new, _ = make_poller(apollo, clock, tmp_path / "a")
    assert new.load_initial().newer_than(held)


def test_putting_back_a_deleted_cache_never_rolls_a_release_back(apollo, clock, tmp_path):
    """The guard's restore and a release race: the release wins, whatever the interleaving
    (the restore reads what it writes under the publish lock, and never overtakes)."""
    import threading

    poller, store = make_poller(apollo, clock, tmp_path)
    apollo.publish("application", {"k": "OLD"})
    poller.load_initial()
    assert store.flush()
    for part in store.cache.parts_dir.iterdir():
        part.unlink()  # a tmp cleaner
    checking = threading.Event()
    real_holds = store.holds

    def slow_holds(snapshot):
        checking.set()
        time.sleep(0.3)  # the guard thread descheduled right here
        return real_holds(snapshot)

    store.holds = slow_holds
    guard = threading.Thread(target=poller.restore_if_missing)
    guard.start()
    checking.wait(2)
    apollo.publish("application", {"k": "NEW"})
    poller.step()  # the notification, the fetch, the publish
    guard.join(5)
    assert poller._snapshot.namespaces["application"]["k"] == "NEW"
    assert store.latest().namespaces["application"]["k"] == "NEW"
    assert store.flush()
    assert store.cache.load().namespaces["application"]["k"] == "NEW"
