"""The file store's front copy in /dev/shm: readers never wait for the disk, and nothing is
lost where the front cannot be seen or used."""

import logging
import os
import threading
import time

import pytest

from hotconf.cache import LocalCache
from hotconf.snapshot import NamespaceSnapshot, Snapshot
from hotconf.stores import FileStore, LayeredStore, open_local_store
from hotconf.stores.front import ENV_SHM_DIR, front_dir
from tests.helpers import wait_until

KEY = "a+default+x"


def snap(version):
    return Snapshot("a", "default", {"application": NamespaceSnapshot(
        "application", {"k": f"v{version}"}, f"r{version}")}, version)


def durable(cache_dir):
    return LocalCache(cache_dir, "a", "default", KEY)


class StalledDisk(LocalCache):
    """The cache file's writes hang (a disk's fsync stalling) until ``gate`` is set."""
    gate = threading.Event()

    def save(self, *args, **kwargs):
        assert self.gate.wait(20)
        return super().save(*args, **kwargs)


def test_the_front_is_private_per_user_and_the_same_in_every_process(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_SHM_DIR, str(tmp_path / "shm"))
    (tmp_path / "shm").mkdir()
    one = front_dir(tmp_path / "cache")
    assert one == front_dir(tmp_path / "link" / ".." / "cache")  # by the real path
    assert one != front_dir(tmp_path / "other")
    assert one.parent == tmp_path / "shm" / f"hotconf-{os.geteuid()}"
    assert one.parent.stat().st_mode & 0o777 == 0o700
    for off in ("off", "0", ""):
        monkeypatch.setenv(ENV_SHM_DIR, off)
        assert front_dir(tmp_path / "cache") is None
        assert isinstance(open_local_store("file", durable(tmp_path / "cache")), FileStore)


def test_a_front_directory_someone_else_could_write_is_refused(tmp_path, monkeypatch, caplog):
    shm = tmp_path / "shm"
    planted = shm / f"hotconf-{os.geteuid()}"
    planted.mkdir(parents=True)
    planted.chmod(0o777)  # made by someone else, or open to them
    monkeypatch.setenv(ENV_SHM_DIR, str(shm))
    with caplog.at_level(logging.WARNING, logger="hotconf"):
        assert front_dir(tmp_path / "cache") is None
    assert "not a directory private to this user" in caplog.text
    store = open_local_store("file", durable(tmp_path / "cache"))
    assert isinstance(store, FileStore)  # the cache file alone: slower, still shared
    store.publish(snap(1))
    assert durable(tmp_path / "cache").load().version == 1


def test_readers_get_a_release_while_the_cache_files_disk_stalls(tmp_path):
    """The publisher's disk hangs in the file's write: every reader still gets each release at
    once from the front (inotify on /dev/shm), the publisher is not held up for the next one,
    and the file ends with the newest once the disk comes back."""
    cache_dir = tmp_path / "cache"
    StalledDisk.gate.clear()
    writer = open_local_store("file", durable(cache_dir))
    assert isinstance(writer, LayeredStore)
    writer.cache = StalledDisk(cache_dir, "a", "default", KEY)  # this process's disk, stalled
    readers = [open_local_store("file", durable(cache_dir)) for _ in range(3)]
    heard = [threading.Event() for _ in readers]
    for reader, event in zip(readers, heard):
        reader.watch(event.set)
    try:
        for version in (1, 2, 3):
            for event in heard:
                event.clear()
            started = time.monotonic()
            writer.publish(snap(version))
            assert time.monotonic() - started < 2  # (it waited 20 s for the disk before)
            for reader, event in zip(readers, heard):
                assert event.wait(5), f"a reader heard nothing of v{version}"
                assert reader.latest().namespaces["application"]["k"] == f"v{version}"
        assert durable(cache_dir).load() is None  # nothing reached the disk yet
        StalledDisk.gate.set()
        assert writer.flush(10)
        assert durable(cache_dir).load().version == 3
    finally:
        StalledDisk.gate.set()
        for store in (writer, *readers):
            store.close()


def test_a_reader_that_cannot_see_the_front_follows_the_file(tmp_path, monkeypatch):
    """Another container sharing the cache volume has its own /dev/shm: its readers watch the
    file as well, and get every release from it."""
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv(ENV_SHM_DIR, str(tmp_path / "shm-of-container-a"))
    writer = open_local_store("file", durable(cache_dir))
    monkeypatch.setenv(ENV_SHM_DIR, str(tmp_path / "shm-of-container-b"))
    reader = open_local_store("file", durable(cache_dir))
    heard = threading.Event()
    reader.watch(heard.set)
    try:
        writer.publish(snap(1))
        assert heard.wait(5)
        wait_until(lambda: (reader.latest() or snap(0)).version == 1, timeout=5,
                   message="the reader to read the file")
    finally:
        writer.close()
        reader.close()


def test_a_full_front_still_gets_the_release_to_readers_through_the_file(tmp_path,
                                                                          monkeypatch):
    """/dev/shm is full (64 MB in a default Docker container): the publish fails there, the
    file behind takes it, and the readers, who watch both, get it from the file."""
    cache_dir = tmp_path / "cache"
    writer = open_local_store("file", durable(cache_dir))
    reader = open_local_store("file", durable(cache_dir))
    heard = threading.Event()
    reader.watch(heard.set)
    front_cache = writer.front.cache

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(front_cache, "_save", full)
    try:
        writer.publish(snap(1))
        assert heard.wait(5)
        wait_until(lambda: (reader.latest() or snap(0)).version == 1, timeout=5,
                   message="the reader to get v1 from the file")
    finally:
        writer.close()
        reader.close()


def test_a_front_lost_with_a_reboot_leaves_the_file(tmp_path):
    """tmpfs is empty after a reboot: a process that starts then reads the cache file."""
    cache_dir = tmp_path / "cache"
    writer = open_local_store("file", durable(cache_dir))
    writer.publish(snap(4))
    writer.close()  # stopping flushes the file written behind
    import shutil
    shutil.rmtree(front_dir(cache_dir))
    again = open_local_store("file", durable(cache_dir))
    try:
        assert again.latest().version == 4
    finally:
        again.close()


@pytest.mark.parametrize("stop", ["close", "exit"])
def test_what_was_published_reaches_the_disk_at_stop_and_at_exit(tmp_path, stop):
    import subprocess
    import sys
    cache_dir = tmp_path / "cache"
    code = f"""
import sys
from hotconf.cache import LocalCache
from hotconf.snapshot import NamespaceSnapshot, Snapshot
from hotconf.stores import open_local_store

class Slow(LocalCache):
    def save(self, *a, **k):
        import time; time.sleep(0.5)  # a slow disk
        return super().save(*a, **k)

store = open_local_store("file", LocalCache({str(cache_dir)!r}, "a", "default", {KEY!r}))
store.cache = Slow({str(cache_dir)!r}, "a", "default", {KEY!r})
store.publish(Snapshot("a", "default", {{"application": NamespaceSnapshot(
    "application", {{"k": "v"}}, "r1")}}, 7))
if {stop!r} == "close":
    store.close()
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert durable(cache_dir).load().version == 7
