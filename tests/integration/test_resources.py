"""cfg.resource in one process (and a fork of it), against the real dev server over HTTP."""

import logging
import os
import threading
import time

import pytest

from hotconf import ResourceError
from hotconf.registry import read_host
from tests.helpers import wait_until


def publish(srv, values, ns="application"):
    return srv.state.publish("demo", "default", ns, values)


class Conn:
    """What a driver hands out: built from a URL, closed once."""

    made = []

    def __init__(self, url):
        if "broken" in url:
            # A driver that quotes the URL it was given, password and all.
            raise ConnectionError(f"cannot connect to {url} (password hunter2 refused)")
        self.url = url
        self.closed = 0
        self.pid = os.getpid()
        Conn.made.append(self)

    def close(self):
        self.closed += 1


@pytest.fixture(autouse=True)
def _fresh_conns():
    Conn.made = []


def conn_factory(cfg):
    return Conn(cfg.get("db.url"))


def test_built_lazily_once_and_read_cheaply(devserver, make_config):
    publish(devserver, {"db.url": "mysql://app@db1/app"})
    cfg = make_config()
    handle = cfg.resource(conn_factory, keys=["db.*"])
    assert Conn.made == []  # nothing built before the first use
    first = handle()
    assert first.url == "mysql://app@db1/app"
    assert handle() is first and handle.get() is first and len(Conn.made) == 1
    assert cfg.status().process.dependents[0].builds == 1


def test_a_release_rebuilds_off_the_request_path_and_closes_the_old_after_grace(
        devserver, make_config):
    publish(devserver, {"db.url": "mysql://app@db1/app", "other": "1"})
    cfg = make_config()
    handle = cfg.resource(conn_factory, keys=["db.url"], grace=0.5, settle=0.05)
    old = handle()
    publish(devserver, {"db.url": "mysql://app@db2/app", "other": "1"})
    wait_until(lambda: handle().url == "mysql://app@db2/app", timeout=10,
               message="the rebuilt object")
    new = handle()
    assert new is not old and old.closed == 0  # still in its grace period
    wait_until(lambda: old.closed == 1, timeout=5, message="the old object closed")
    time.sleep(0.3)
    assert old.closed == 1 and new.closed == 0
    # An unrelated release rebuilds nothing.
    publish(devserver, {"db.url": "mysql://app@db2/app", "other": "2"})
    wait_until(lambda: cfg.get("other") == "2", message="the unrelated release")
    time.sleep(0.4)
    assert handle() is new and len(Conn.made) == 2


def test_a_value_changed_and_changed_back_rebuilds_nothing(devserver, make_config):
    publish(devserver, {"db.url": "u1"})
    cfg = make_config()
    handle = cfg.resource(conn_factory, keys=["db.url"], settle=1.0)
    first = handle()
    publish(devserver, {"db.url": "u2"})
    wait_until(lambda: cfg.get("db.url") == "u2", message="u2")
    publish(devserver, {"db.url": "u1"})
    wait_until(lambda: cfg.get("db.url") == "u1", message="back to u1")
    time.sleep(1.8)  # past the settle window
    assert handle() is first and len(Conn.made) == 1


def test_a_use_block_keeps_its_object_open_past_the_grace(devserver, make_config):
    publish(devserver, {"db.url": "u1"})
    cfg = make_config()
    handle = cfg.resource(conn_factory, keys=["db.url"], grace=0.1, settle=0.0)
    with handle.use() as held:
        publish(devserver, {"db.url": "u2"})
        wait_until(lambda: handle().url == "u2", message="the rebuild")
        time.sleep(0.5)  # the grace is long over
        assert held.url == "u1" and held.closed == 0
    assert held.closed == 1  # closed as the block ended
    with handle.use() as current:
        assert current.url == "u2"


def test_a_bad_value_keeps_the_old_object_logs_masked_and_shows_in_status(
        devserver, make_config, caplog):
    caplog.set_level(logging.INFO, logger="hotconf")
    publish(devserver, {"db.url": "mysql://app:s3cret-pw@db1/app"})
    cfg = make_config(stale_after=0.5)
    handle = cfg.resource(conn_factory, keys=["db.url"], settle=0.0, grace=1.0, name="db")
    good = handle()
    publish(devserver, {"db.url": "mysql://app:s3cret-pw@broken/app"})
    wait_until(lambda: cfg.status().process.dependents[0].error is not None, timeout=10,
               message="the failure recorded")
    assert handle() is good and good.closed == 0
    state = cfg.status().process.dependents[0]
    assert state.failed_keys == ("application:db.url",) and state.failures == 1
    text = caplog.text + state.error
    assert "could not be rebuilt" in caplog.text and "application:db.url" in caplog.text
    assert "s3cret-pw" not in text and "ConnectionError" in state.error
    assert caplog.text.count("could not be rebuilt") == 1
    # The host view: STALE-like failing row once past the bound, exit 5.
    time.sleep(0.7)
    view = read_host(cfg.settings, 0.5)
    assert view.exit_status == 5
    assert any("resource 'db'" in p and "application:db.url" in p for p in view.problems)
    # The next release tries again, and a good value builds.
    publish(devserver, {"db.url": "mysql://app:s3cret-pw@db3/app"})
    wait_until(lambda: handle().url.endswith("db3/app"), timeout=10, message="rebuilt")
    assert cfg.status().process.dependents[0].error is None
    assert read_host(cfg.settings, 0.5).exit_status == 0
    wait_until(lambda: good.closed == 1, timeout=10, message="the old object closed")


def test_a_first_build_that_fails_raises_naming_the_keys_and_retries_with_backoff(
        devserver, make_config):
    publish(devserver, {"db.url": "mysql://app:pw123@broken/app"})
    cfg = make_config()
    calls = []

    def factory(c):
        calls.append(1)
        return conn_factory(c)

    handle = cfg.resource(factory, keys=["db.url"], settle=0.0)
    with pytest.raises(ResourceError) as caught:
        handle()
    assert "db.url" in str(caught.value) and "pw123" not in str(caught.value)
    with pytest.raises(ResourceError):
        handle()  # within the backoff: no new attempt
    assert len(calls) == 1
    publish(devserver, {"db.url": "mysql://app:pw123@db1/app"})
    wait_until(lambda: cfg.get("db.url").endswith("db1/app"), message="the fix")

    def built():
        try:
            return handle().url.endswith("db1/app")
        except ResourceError:
            return False

    wait_until(built, timeout=5, message="built after the backoff")
    assert len(calls) == 2


def test_an_outage_at_rebuild_is_retried_on_access_with_backoff(devserver, make_config):
    publish(devserver, {"db.url": "u1"})
    cfg = make_config()
    down = threading.Event()

    def factory(c):
        if down.is_set():
            raise OSError("db unreachable")
        return conn_factory(c)

    handle = cfg.resource(factory, keys=["db.url"], settle=0.0)
    first = handle()
    down.set()
    publish(devserver, {"db.url": "u2"})
    wait_until(lambda: cfg.status().process.dependents[0].error is not None, message="failed")
    down.clear()
    # No new release: an access after the backoff (about 1 s) retries in the background.
    wait_until(lambda: handle().url == "u2", timeout=6, message="the retry on access")
    assert handle() is not first


def test_concurrent_first_access_builds_once(devserver, make_config):
    publish(devserver, {"db.url": "u1"})
    cfg = make_config()
    cfg.get("db.url")
    started = threading.Barrier(8)

    def slow_factory(c):
        time.sleep(0.2)
        return conn_factory(c)

    handle = cfg.resource(slow_factory, keys=["db.url"])
    seen = []

    def worker():
        started.wait()
        seen.append(handle())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(Conn.made) == 1 and len(seen) == 8 and all(s is seen[0] for s in seen)


def test_globs_and_namespaced_patterns_follow_only_their_keys(devserver, make_config):
    publish(devserver, {"db.url": "u1", "db.pool": "5", "cache.url": "c1"})
    publish(devserver, {"url": "x1"}, ns="infra")
    cfg = make_config(namespaces=["application", "infra"])
    handle = cfg.resource(lambda c: (c.get("db.url"), c.get("url", namespace="infra")),
                          keys=["db.*", "infra:url"], settle=0.0)
    assert handle() == ("u1", "x1")
    publish(devserver, {"db.url": "u1", "db.pool": "5", "cache.url": "c2"})
    wait_until(lambda: cfg.get("cache.url") == "c2", message="c2")
    time.sleep(0.3)
    assert handle() == ("u1", "x1")
    publish(devserver, {"url": "x2"}, ns="infra")
    wait_until(lambda: handle() == ("u1", "x2"), timeout=10, message="the namespaced key")


def test_a_forked_child_builds_its_own_and_never_closes_the_parents(devserver, make_config):
    publish(devserver, {"db.url": "u1"})
    cfg = make_config()
    handle = cfg.resource(conn_factory, keys=["db.url"], grace=0.0)
    parent = handle()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running pytest's teardown
        try:
            child = handle()
            os.write(write, f"{id(child) != id(parent)} {child.pid} {parent.closed}".encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        answer = os.read(read, 200).decode().split()
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert answer == ["True", str(pid), "0"]
    assert handle() is parent and parent.closed == 0


def test_bad_arguments_say_what_to_pass(make_config):
    cfg = make_config()
    with pytest.raises(ValueError, match="keys"):
        cfg.resource(conn_factory, keys=[])
    with pytest.raises(TypeError, match="factory"):
        cfg.resource("not callable", keys=["db.url"])


# -- what a hostile review found ----------------------------------------------------------------
class Finalized:
    """An object whose finalizer would talk on a shared socket (psycopg2's does)."""

    def __init__(self, fd):
        self.fd, self.pid = fd, os.getpid()

    def __del__(self):
        try:
            os.write(self.fd, f"del {self.pid} in {os.getpid()}\n".encode())
        except OSError:  # the test is over: its pipe is closed
            pass


def test_a_child_never_finalizes_the_parents_object(devserver, make_config):
    import gc

    publish(devserver, {"db.url": "u1"})
    cfg = make_config()
    read, write = os.pipe()
    handle = cfg.resource(lambda c: Finalized(write), keys=["db.url"])
    parent_pid = handle().pid  # only the handle holds the parent's object
    pid = os.fork()
    if pid == 0:
        try:
            child = handle()
            gc.collect()
            os.write(write, f"child built {child.pid != parent_pid}\n".encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    os.close(write)
    said = os.read(read, 1000).decode()
    os.close(read)
    assert said == "child built True\n", said  # and no "del": the parent's object was kept


def test_a_release_during_the_first_build_is_not_lost(devserver, make_config):
    publish(devserver, {"db.url": "u1"})
    cfg = make_config()
    cfg.get("db.url")
    building, release_done = threading.Event(), threading.Event()

    def slow(c):
        url = c.get("db.url")
        building.set()
        release_done.wait(10)
        return Conn(url)

    handle = cfg.resource(slow, keys=["db.url"], settle=0.0)
    first = threading.Thread(target=handle)
    first.start()
    assert building.wait(10)
    publish(devserver, {"db.url": "u2"})
    wait_until(lambda: cfg.get("db.url") == "u2", message="u2 delivered during the build")
    release_done.set()
    first.join(10)
    wait_until(lambda: handle().url == "u2", timeout=10, message="the object caught up")


def test_a_first_build_failure_is_retried_at_the_next_release_at_once(devserver, make_config):
    publish(devserver, {"db.url": "broken"})
    cfg = make_config()
    handle = cfg.resource(conn_factory, keys=["db.url"], settle=0.0)
    with pytest.raises(ResourceError):
        handle()
    publish(devserver, {"db.url": "mysql://db1/app"})
    wait_until(lambda: cfg.get("db.url") == "mysql://db1/app", message="the fix")
    assert handle().url == "mysql://db1/app"  # no wait for the backoff (1 s and more)


def test_secrets_of_keys_the_resource_does_not_follow_are_masked_too(
        devserver, make_config, caplog):
    caplog.set_level(logging.INFO, logger="hotconf")
    publish(devserver, {"db.url": "mysql://db1/app", "db.password": "Tr0ub4dor",
                        "db.dsn": "host=db password=c0rrect-horse"})
    cfg = make_config()

    def factory(c):
        raise OSError(f"login failed with {c.get('db.password')} ({c.get('db.dsn')})")

    handle = cfg.resource(factory, keys=["db.url"])
    with pytest.raises(ResourceError) as caught:
        handle()
    shown = str(caught.value) + caplog.text + cfg.status().process.dependents[0].error
    assert "Tr0ub4dor" not in shown and "c0rrect-horse" not in shown and "login failed" in shown


def test_a_slow_close_runs_off_the_requests_thread(devserver, make_config):
    publish(devserver, {"db.url": "u1"})
    cfg = make_config()
    closed = threading.Event()

    def slow_close(conn):
        time.sleep(1.0)
        closed.set()

    handle = cfg.resource(conn_factory, keys=["db.url"], close=slow_close, grace=0.0,
                          settle=0.0)
    with handle.use():
        publish(devserver, {"db.url": "u2"})
        wait_until(lambda: handle().url == "u2", message="the rebuild")
        started = time.monotonic()
    assert time.monotonic() - started < 0.5  # the block's end does not wait for the close
    assert closed.wait(5)


def test_async_factories_are_refused_and_async_closes_are_said(devserver, make_config, caplog):
    caplog.set_level(logging.INFO, logger="hotconf")
    publish(devserver, {"db.url": "u1"})
    cfg = make_config()

    async def connect(c):
        return Conn(c.get("db.url"))

    with pytest.raises(TypeError, match="async factory"):
        cfg.resource(connect, keys=["db.url"])

    class AsyncClient(Conn):
        async def close(self):
            self.closed += 1

    handle = cfg.resource(lambda c: AsyncClient(c.get("db.url")), keys=["db.url"], grace=0.0,
                          settle=0.0)
    old = handle()
    publish(devserver, {"db.url": "u2"})
    wait_until(lambda: "cannot await" in caplog.text, timeout=10, message="the warning")
    assert old.closed == 0 and "never awaited" not in caplog.text


def test_a_factory_that_hangs_shows_in_status_and_holds_one_thread(devserver, make_config):
    publish(devserver, {"db.url": "u1"})
    cfg = make_config(stale_after=0.5)
    hang = threading.Event()
    gate = threading.Event()

    def factory(c):
        if hang.is_set():
            gate.wait(30)
        return Conn(c.get("db.url"))

    handle = cfg.resource(factory, keys=["db.url"], settle=0.0, name="db")
    handle()
    hang.set()
    try:
        for n in range(2, 8):
            publish(devserver, {"db.url": f"u{n}"})
            wait_until(lambda n=n: cfg.get("db.url") == f"u{n}", message=f"u{n}")
        time.sleep(0.8)
        busy = [t for t in threading.enumerate() if t.name == "hotconf-resource db"]
        assert len(busy) <= 2, busy  # the hung build, at most one timer: not one per release
        assert cfg.status().process.dependents[0].building_since is not None
        view = read_host(cfg.settings, 0.5)
        assert view.exit_status == 5 and any("building for" in p for p in view.problems)
    finally:
        gate.set()
    wait_until(lambda: handle().url == "u7", timeout=10, message="the last value, once unstuck")


def test_names_are_unique_and_keys_name_loaded_namespaces(devserver, make_config):
    publish(devserver, {"db.url": "u1", "cache.url": "c1"})
    cfg = make_config()
    a = cfg.resource(lambda c: 1, keys=["db.url"])
    b = cfg.resource(lambda c: 2, keys=["db.url"])
    c = cfg.resource(conn_factory, keys=["cache.url"])
    assert (a.name, b.name, c.name) == ("db.url", "db.url #2", "conn_factory")
    with pytest.raises(KeyError, match="nosuch"):
        cfg.resource(conn_factory, keys=["nosuch:db.url"])


def test_a_failing_first_build_does_not_queue_every_request_behind_it(devserver, make_config):
    publish(devserver, {"db.url": "broken"})
    cfg = make_config()
    calls = []

    def factory(c):
        calls.append(1)
        time.sleep(1.5 if len(calls) > 1 else 0)
        return Conn(c.get("db.url"))

    handle = cfg.resource(factory, keys=["db.url"])
    with pytest.raises(ResourceError):
        handle()
    time.sleep(1.3)  # past the first backoff: the next access retries (slowly)
    slow = threading.Thread(target=lambda: pytest.raises(ResourceError, handle))
    slow.start()
    time.sleep(0.2)
    started = time.monotonic()
    with pytest.raises(ResourceError):
        handle()  # another request meanwhile: fails fast, not after the slow retry
    assert time.monotonic() - started < 0.5
    slow.join(10)


def test_a_base_exception_from_the_factory_keeps_the_old_object(devserver, make_config):
    class Timeout(BaseException):  # what gevent.Timeout is
        pass

    publish(devserver, {"db.url": "u1"})
    cfg = make_config()

    def factory(c):
        if c.get("db.url") == "u2":
            raise Timeout("connect timed out")
        return Conn(c.get("db.url"))

    handle = cfg.resource(factory, keys=["db.url"], settle=0.0)
    first = handle()
    publish(devserver, {"db.url": "u2"})
    wait_until(lambda: cfg.status().process.dependents[0].error is not None, message="failed")
    assert handle() is first and "Timeout" in cfg.status().process.dependents[0].error
