"""Role changes of one process, on real stores and the real host lock, with a fake Apollo:
poller when it wins the lock, reader when another process holds it, takeover when it is
freed, polling alone when the lock directory is unusable."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time

import pytest

from hotconf.apollo.client import ApolloClient
from hotconf.cache import LocalCache
from hotconf.election import PollerClaim, PollerLock
from hotconf.options import Settings
from hotconf.process.poller import Poller
from hotconf.process.role import Role
from hotconf.runtime import ProcessFacts
from hotconf.stores import open_local_store
from tests.helpers import wait_until


@pytest.fixture
def settings(tmp_path):
    return Settings.resolve(app_id="demo", config_service="http://apollo.test",
                            cache_dir=tmp_path / "cache", environ={})


class Process:
    """One simulated process's Config side: what it was delivered."""

    def __init__(self):
        self.held = None
        self.delivered = []

    def deliver(self, snapshot):
        if self.held is None or snapshot.version > self.held.version:
            self.held = snapshot
            self.delivered.append(snapshot.version)


def make_role(settings, apollo, kind="file", competes=True, interval=3600.0, claims=False,
              stand_in_after=0.0):
    """A Role of a simulated process, with a fake Apollo behind its poller."""
    proc = Process()

    def make_poller(s, store):
        # A fake Apollo answers a poll with nothing new at once: pace the loop a little.
        return Poller(s, store, client=ApolloClient(s, transport=apollo.transport),
                      wait=lambda seconds: time.sleep(min(seconds, 0.01)))

    original_poll = apollo.transport.handler

    def paced(request):
        if request.path == "/notifications/v2":
            time.sleep(0.01)
        return original_poll(request)

    apollo.transport.handler = paced
    role = Role(settings, ProcessFacts(), open_local_store(kind, LocalCache.for_settings(settings)),
                competes, proc.deliver, held=lambda: proc.held,
                fallback_store=lambda: open_local_store("memory",
                                                        LocalCache.for_settings(settings)),
                safety_interval=interval, guard_interval=interval, make_poller=make_poller,
                claims=claims, stand_in_after=stand_in_after)
    return role, proc


def lock_of(settings):
    return PollerLock(settings.cache_dir / f"{settings.instance_key}.poller.lock")


def test_a_process_that_wins_the_lock_polls(settings, apollo):
    role, proc = make_role(settings, apollo)
    try:
        role.start()
        assert role.name == "poller"
        assert proc.held.namespaces["application"]["k"] == "v1"
        assert lock_of(settings).holder_pid() is not None
    finally:
        role.stop()


def test_a_store_nobody_shares_needs_no_election(settings, apollo):
    held = lock_of(settings)
    assert held.try_acquire()  # another process holds the host's lock...
    role, proc = make_role(settings, apollo, kind="memory")
    try:
        role.start()
        assert role.name == "poller"  # ...but a memory store is this process's alone
    finally:
        role.stop()
        held.release()


@contextlib.contextmanager
def poller_and_reader(settings, apollo):
    """Two processes' roles on one host: the first polls, the second reads (both started)."""
    first, first_proc = make_role(settings, apollo)
    first.start()
    second, second_proc = make_role(settings, apollo)
    try:
        second.start()
        assert second.name == "reader"
        assert second_proc.held.namespaces["application"]["k"] == "v1"
        yield first, second, second_proc
    finally:
        first.stop()
        second.stop()


def test_a_process_that_loses_reads_and_takes_over_when_the_lock_is_freed(settings, apollo):
    with poller_and_reader(settings, apollo) as (first, second, second_proc):
        apollo.publish("application", {"k": "v2"})
        wait_until(lambda: second_proc.held.namespaces["application"]["k"] == "v2",
                   message="the reader to follow the poller's release")

        first.stop()  # the poller goes away: its lock is free
        wait_until(lambda: second.name == "poller", message="the standby to take over")
        apollo.publish("application", {"k": "v3"})
        wait_until(lambda: second_proc.held.namespaces["application"]["k"] == "v3",
                   message="the new poller's release")
        assert second_proc.delivered == sorted(second_proc.delivered)


def test_a_process_that_may_not_compete_never_takes_over(settings, apollo):
    role, _ = make_role(settings, apollo, competes=False)
    try:
        role.start()
        time.sleep(0.3)  # several standby intervals with a free lock
        assert role.name == "reader"
    finally:
        role.stop()


def test_an_unusable_lock_directory_means_polling_alone(tmp_path, apollo):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    settings = Settings.resolve(app_id="demo", config_service="http://apollo.test",
                                cache_dir=blocker, environ={})
    role, proc = make_role(settings, apollo)
    try:
        role.start()
        assert role.name == "poller" and not role.store.shared
        assert proc.held.namespaces["application"]["k"] == "v1"
    finally:
        role.stop()


def test_stop_during_a_takeover_hands_the_role_straight_back(settings, apollo):
    role, _ = make_role(settings, apollo)
    started = threading.Event()
    original = role._make_poller

    def slow_poller(s, store):
        started.set()
        role.stop()  # stopped while it was becoming the poller
        return original(s, store)

    role._make_poller = slow_poller
    role.start()
    assert started.is_set()
    assert lock_of(settings).holder_pid() is None


def test_a_standby_takes_over_the_moment_the_lock_is_freed_with_no_timer(settings, apollo):
    """The safety net's timer is an hour here: the kernel's wake-up is the only way."""
    first, _ = make_role(settings, apollo)
    first.start()
    second, proc = make_role(settings, apollo)
    try:
        second.start()
        assert second.name == "reader"
        time.sleep(0.2)  # the standby is waiting in flock
        freed = time.monotonic()
        first.stop()
        wait_until(lambda: second.name == "poller", timeout=5, interval=0.002,
                   message="the standby to take over")
        assert time.monotonic() - freed < 1.0
    finally:
        first.stop()
        second.stop()


def test_a_standby_takes_over_from_a_killed_process(settings, tmp_path):
    """A real process holds the lock and is SIGKILLed: the kernel frees the lock and wakes
    the waiting standby."""
    lock = lock_of(settings)
    pid = os.fork()
    if pid == 0:  # the poller of another process
        try:
            if lock.try_acquire():
                (tmp_path / "held").touch()
                time.sleep(60)
        finally:
            os._exit(0)
    try:
        wait_until(lambda: (tmp_path / "held").exists(), message="the other process to lock")
        standby = PollerLock(lock.path)
        fd = standby.open_for_wait()
        took = []
        thread = threading.Thread(target=lambda: (PollerLock.wait(fd), took.append(
            standby.adopt(fd, keep=True))), daemon=True)
        thread.start()
        time.sleep(0.1)
        assert took == []
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        thread.join(5)
        assert took == [True] and time.monotonic() - killed < 1.0
        assert standby.held and lock.holder_pid() == os.getpid()
        standby.release()
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def test_a_child_forked_while_the_standby_waits_never_shares_the_lock(settings, tmp_path):
    """The waiting descriptor is closed in a forked child: otherwise, once the parent's standby
    won, the child would hold the lock too, and keep it after the parent let go."""
    holder = lock_of(settings)
    assert holder.try_acquire()
    standby = PollerLock(holder.path)
    fd = standby.open_for_wait()
    thread = threading.Thread(target=lambda: (PollerLock.wait(fd), standby.adopt(fd)), daemon=True)
    thread.start()
    time.sleep(0.05)
    child = os.fork()
    if child == 0:
        time.sleep(30)
        os._exit(0)
    try:
        holder.release()
        thread.join(5)
        assert standby.held
        standby.release()
        third = PollerLock(holder.path)
        assert third.try_acquire(), "the forked child kept the lock the standby let go"
        third.release()
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_a_reader_follows_releases_by_push_alone(settings, apollo):
    """No timer: the file store's inotify event brings each release."""
    first, _ = make_role(settings, apollo)
    first.start()
    second, proc = make_role(settings, apollo)
    try:
        second.start()
        for value in ("v2", "v3"):
            apollo.publish("application", {"k": value})
            wait_until(lambda v=value: proc.held.namespaces["application"]["k"] == v, timeout=5,
                       message="the reader to follow by push")
    finally:
        first.stop()
        second.stop()


def test_the_poller_puts_back_what_is_deleted_when_it_is_deleted(settings, apollo):
    """No timer (the guard's is an hour here): inotify wakes the guard on a deletion."""
    role, proc = make_role(settings, apollo)
    try:
        role.start()
        lock = lock_of(settings)
        cache = LocalCache.for_settings(settings)
        wait_until(lambda: cache.holds(proc.held), timeout=3, message="the file written behind")
        lock.path.unlink()  # a tmp cleaner
        wait_until(lambda: lock.path.exists() and lock.holder_pid() == os.getpid(), timeout=3,
                   message="the lock file put back")
        for part in cache.parts_dir.iterdir():
            part.unlink()
        wait_until(lambda: cache.holds(proc.held), timeout=3, message="the parts written again")
        away = settings.cache_dir.with_name("away")
        os.rename(settings.cache_dir, away)  # the whole cache dir (rm -rf), then again
        shutil.rmtree(away)
        wait_until(lambda: cache.holds(proc.held) and lock.holder_pid() == os.getpid(),
                   timeout=3, message="the cache dir put back")
        cache.path.unlink()
        wait_until(lambda: cache.holds(proc.held), timeout=3, message="the index put back")
        assert role.name == "poller"
    finally:
        role.stop()


def test_configs_stopped_while_standing_by_leave_nothing_behind(settings, apollo):
    """A blocked flock cannot be interrupted: stopped Roles leave one shared waiter per lock
    file, not a thread each, and the next Role still takes over through it."""
    holder = lock_of(settings)
    assert holder.try_acquire()  # the poller, elsewhere
    from hotconf.process import standby
    try:
        before = threading.active_count()
        for _ in range(30):  # a Config per request, by mistake
            role, _ = make_role(settings, apollo)
            role.start()
            assert role.name == "reader"
            role.stop()
        time.sleep(0.2)
        assert standby.waiting(holder.path) == 0
        assert threading.active_count() <= before + 1, [t.name for t in threading.enumerate()]
        last, _ = make_role(settings, apollo)
        last.start()
        assert standby.waiting(holder.path) == 1
        freed = time.monotonic()
        holder.release()
        wait_until(lambda: last.name == "poller", timeout=5, interval=0.002,
                   message="the last Role to take over through the shared waiter")
        assert time.monotonic() - freed < 1.0
        last.stop()
    finally:
        holder.release()


def test_a_takeover_that_fails_lets_the_lock_go_and_stands_by_again(settings, apollo, caplog):
    """Holding the lock without polling would leave the host with no poller."""
    holder = lock_of(settings)
    assert holder.try_acquire()
    role, _ = make_role(settings, apollo)
    real_make = role._make_poller
    attempts = []

    def flaky_make(s, store):
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise RuntimeError("the first takeover fails")
        return real_make(s, store)

    try:
        role.start()
        assert role.name == "reader"
        role._make_poller = flaky_make
        holder.release()
        wait_until(lambda: role.name == "poller", timeout=10, message="the second attempt")
        assert len(attempts) == 2 and "taking over polling failed" in caplog.text
        assert attempts[1] - attempts[0] >= 2.0  # no tight loop between attempts
    finally:
        role.stop()
        holder.release()


def test_a_worker_standing_in_for_the_mule_hands_the_role_back_when_it_claims_it(settings,
                                                                                  apollo):
    """The mule died and a worker took over at once; uWSGI respawns the mule, which claims the
    role: the worker steps down (woken by the claim, no timer) and the mule polls."""
    worker, worker_proc = make_role(settings, apollo)
    mule, mule_proc = make_role(settings, apollo, claims=True)
    try:
        worker.start()
        assert worker.name == "poller"
        claimed = time.monotonic()
        mule.start()
        wait_until(lambda: mule.name == "poller", timeout=5, interval=0.002,
                   message="the mule to poll")
        assert time.monotonic() - claimed < 2.0  # the guard's fallback timer is 60 s
        assert worker.name == "reader"
        assert not PollerClaim(lock_of(settings).path).pending()  # withdrawn once polling
        apollo.publish("application", {"k": "from-the-mule"})
        for proc in (worker_proc, mule_proc):
            wait_until(lambda p=proc: p.held.namespaces["application"]["k"] == "from-the-mule",
                       message="the release to reach both")
        # the mule dies again: the worker stands in at once
        died = time.monotonic()
        mule.stop()
        wait_until(lambda: worker.name == "poller", timeout=5, interval=0.002,
                   message="the worker to stand in")
        assert time.monotonic() - died < 1.0
    finally:
        mule.stop()
        worker.stop()


def test_while_a_mule_claims_the_role_no_worker_takes_it(settings, apollo):
    holder = lock_of(settings)
    assert holder.try_acquire()  # a poller elsewhere
    mule, _ = make_role(settings, apollo, claims=True)
    workers = [make_role(settings, apollo)[0] for _ in range(3)]
    try:
        mule.start()
        for worker in workers:
            worker.start()
        assert {w.name for w in workers} == {"reader"} and mule.name == "reader"
        assert PollerClaim(holder.path).pending()
        holder.release()
        wait_until(lambda: mule.name == "poller", timeout=5, message="the mule to poll")
        time.sleep(0.2)
        assert {w.name for w in workers} == {"reader"}
    finally:
        for role in (mule, *workers):
            role.stop()
        holder.release()


def test_a_claimant_that_died_blocks_nobody(settings, tmp_path):
    """The claim is a lock, not a pid in a file: the kernel lets go of a dead mule's claim."""
    claim = PollerClaim(lock_of(settings).path)
    pid = os.fork()
    if pid == 0:
        try:
            if PollerClaim(claim.path.with_name(lock_of(settings).path.name)).stake():
                (tmp_path / "claimed").touch()
                time.sleep(60)
        finally:
            os._exit(0)
    try:
        wait_until(lambda: (tmp_path / "claimed").exists(), message="the child to claim")
        assert claim.pending()
        assert not claim.stake()  # one claimant at a time
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pid = 0
        assert not claim.pending()
        assert claim.stake() and not claim.pending()  # our own claim is not "another's"
        claim.withdraw()
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_a_reader_behind_the_store_says_so_once_and_when_it_caught_up(tmp_path, apollo, caplog):
    """It cannot read the host's newer snapshot (here: its store answers nothing): past the
    bound it logs one warning, shows in its status, and logs again once it has caught up."""
    settings = Settings.resolve(app_id="demo", config_service="http://apollo.test",
                                cache_dir=tmp_path / "cache", environ={}, stale_after=0.5)
    poller, _ = make_role(settings, apollo)
    reader, proc = make_role(settings, apollo)
    try:
        poller.start()
        reader.start()
        assert reader.name == "reader"
        real_latest = reader.store.latest
        reads = []
        reader.store.latest = lambda previous=None: reads.append(1)  # it does not decode
        apollo.publish("application", {"k": "v2"})
        wait_until(lambda: "is behind the host" in caplog.text, timeout=10,
                   message="the warning")
        assert proc.held.namespaces["application"]["k"] == "v1"
        assert reader.report.behind and caplog.text.count("is behind the host") == 1
        before = len(reads)
        for _ in range(100):
            reader.check()  # requests: they leave a store they cannot read to the safety net
        time.sleep(2.5)
        assert len(reads) - before <= 3, "retried every 2 s, never in a loop"
        reader.store.latest = real_latest
        wait_until(lambda: "caught up" in caplog.text, timeout=10, message="the all-clear")
        assert proc.held.namespaces["application"]["k"] == "v2" and not reader.report.behind
        assert caplog.text.count("is behind the host") == 1
    finally:
        reader.stop()
        poller.stop()


def test_the_claim_of_one_app_never_names_another_apps(tmp_path):
    one = PollerClaim(tmp_path / "my.lockservice+default+855de723.poller.lock")
    other = PollerClaim(tmp_path / "myservice+default+855de723.poller.lock")
    assert one.path != other.path and one.path.name.endswith(".poller.claim")
    assert one.stake() and not other.pending()
    one.withdraw()


def test_run_mule_in_a_process_already_armed_makes_it_the_preferred_poller(settings, apollo):
    """The mule armed as a plain process first (a read at import; the post-fork hook, even
    under poller="never"): run_mule upgrades it, and the worker polling hands the role over."""
    worker, _ = make_role(settings, apollo)
    mule, _ = make_role(settings, apollo, competes=False)  # armed under poller="never"
    try:
        worker.start()
        mule.start()
        assert (worker.name, mule.name) == ("poller", "reader")
        mule.prefer()
        wait_until(lambda: mule.name == "poller", timeout=5, message="the mule to poll")
        assert worker.name == "reader" and mule.claims
        mule.prefer()  # again: nothing changes
        assert mule.name == "poller"
    finally:
        mule.stop()
        worker.stop()


def test_in_mule_mode_a_worker_leaves_the_start_to_the_mule(settings, apollo):
    """Workers arm before the mule: they compete only after a grace, so the mule polls from
    the start and no worker polls for a moment and hands back."""
    workers = [make_role(settings, apollo, stand_in_after=0.5)[0] for _ in range(2)]
    mule, _ = make_role(settings, apollo, claims=True)
    try:
        for worker in workers:
            worker.start()
        assert {w.name for w in workers} == {"reader"}
        assert lock_of(settings).holder_pid() is None  # nobody took the free lock
        mule.start()
        assert mule.name == "poller"
        time.sleep(0.8)  # past the grace: the workers stand by now, and the mule keeps polling
        assert mule.name == "poller" and {w.name for w in workers} == {"reader"}
        mule.stop()
        wait_until(lambda: any(w.name == "poller" for w in workers), timeout=5,
                   message="a worker to stand in")
    finally:
        mule.stop()
        for worker in workers:
            worker.stop()


def test_in_mule_mode_without_a_mule_a_worker_polls_after_the_grace(settings, apollo):
    worker, proc = make_role(settings, apollo, stand_in_after=0.3)
    try:
        worker.start()
        assert worker.name == "reader"
        assert proc.held is None  # nothing polled, nothing cached yet
        wait_until(lambda: worker.name == "poller" and proc.held is not None, timeout=5,
                   message="the grace to end and the worker to poll")
        assert proc.held.namespaces["application"]["k"] == "v1"
    finally:
        worker.stop()


def test_a_standby_that_missed_a_push_catches_up_when_it_takes_over(settings, apollo):
    """It takes over from the host's snapshot without fetching first: its own process must get
    that snapshot too, not wait for the next release (found by a review of the change)."""
    with poller_and_reader(settings, apollo) as (first, second, second_proc):
        second.store.close()  # its push is lost (the safety net would catch up a minute later)
        apollo.publish("application", {"k": "v2"})
        wait_until(lambda: first.store.latest().namespaces["application"]["k"] == "v2")
        assert second_proc.held.namespaces["application"]["k"] == "v1"
        first.stop()  # ...and the poller is gone before that
        wait_until(lambda: second.name == "poller", message="takeover")
        wait_until(lambda: second_proc.held.namespaces["application"]["k"] == "v2", timeout=5,
                   message="the new poller's own process serving the host's release")


def test_concurrent_refreshes_for_one_release_read_it_once(settings, apollo):
    """The push, the cache file's event and a request's check may all refresh at once for one
    release: one of them reads the store, the others find the token it read."""
    with poller_and_reader(settings, apollo) as (first, second, second_proc):
        second.store.close()  # no watch of its own: the test drives the refreshes
        apollo.publish("application", {"k": "v2"})
        wait_until(lambda: first.store.latest().namespaces["application"]["k"] == "v2")
        assert first.store.flush()  # (the cache file too, written behind: one token to find)
        real_latest, reads = second.store.latest, []

        def slow_latest(previous=None):
            reads.append(previous)
            time.sleep(0.2)  # the other threads arrive meanwhile
            return real_latest(previous)

        second.store.latest = slow_latest
        threads = [threading.Thread(target=second.refresh) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(reads) == 1
        assert second_proc.held.namespaces["application"]["k"] == "v2"
