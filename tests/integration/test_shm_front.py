"""The file store's front copy in /dev/shm: readers never wait for the disk, and nothing is
lost where the front cannot be seen or used."""

import logging
import os
import threading
import time
from pathlib import Path

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
    follows_through_the_file(writer, open_local_store("file", durable(cache_dir)))


def follows_through_the_file(writer, reader, patch=lambda: None):
    """``reader`` hears of the writer's v1 and reads it (``patch`` runs once it watches)."""
    heard = threading.Event()
    reader.watch(heard.set)
    patch()
    try:
        writer.publish(snap(1))
        assert heard.wait(5)
        wait_until(lambda: (reader.latest() or snap(0)).version == 1, timeout=5,
                   message="the reader to read v1")
    finally:
        writer.close()
        reader.close()


def test_a_full_front_still_gets_the_release_to_readers_through_the_file(tmp_path,
                                                                          monkeypatch):
    """/dev/shm is full (64 MB in a default Docker container): the publish fails there, the
    file behind takes it, and the readers, who watch both, get it from the file."""
    cache_dir = tmp_path / "cache"
    writer = open_local_store("file", durable(cache_dir))

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    follows_through_the_file(writer, open_local_store("file", durable(cache_dir)),
                             lambda: monkeypatch.setattr(writer.front.cache, "_save", full))


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


def test_a_deleted_private_directory_comes_back_private(tmp_path, monkeypatch):
    """systemd's RemoveIPC empties a user's /dev/shm at logout: the next write makes the
    directory again 0700 (made with the umask's 0755, every later process refused it)."""
    shm = tmp_path / "shm"
    shm.mkdir()
    monkeypatch.setenv(ENV_SHM_DIR, str(shm))
    cache_dir = tmp_path / "cache"
    writer = open_local_store("file", durable(cache_dir))
    reader = open_local_store("file", durable(cache_dir))
    heard = threading.Event()
    reader.watch(heard.set)
    try:
        writer.publish(snap(1))
        import shutil
        shutil.rmtree(shm / f"hotconf-{os.geteuid()}")
        reader.rewatch()  # (what the reader's safety net does when the token moved)
        writer.publish(snap(2))
        private = shm / f"hotconf-{os.geteuid()}"
        assert private.stat().st_mode & 0o777 == 0o700
        assert front_dir(cache_dir) is not None
        wait_until(lambda: (reader.latest() or snap(0)).version == 2, timeout=5,
                   message="the reader to follow")
    finally:
        writer.close()
        reader.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_directory_another_user_planted_after_a_deletion_is_never_used(tmp_path,
                                                                        monkeypatch, request):
    """After the private directory was deleted, another user makes one of that name (and a
    forged copy in it) before hotconf writes again: hotconf neither writes into it nor
    believes what is there, and readers stay on the real releases (from the cache file)."""
    import shutil
    import tempfile
    shm = Path(tempfile.mkdtemp(prefix="hotconf-tests-planted-", dir="/dev/shm"))
    request.addfinalizer(lambda: shutil.rmtree(shm, ignore_errors=True))
    shm.chmod(0o1777)  # like /dev/shm itself (the other user must reach it)
    monkeypatch.setenv(ENV_SHM_DIR, str(shm))
    cache_dir = tmp_path / "cache"
    writer = open_local_store("file", durable(cache_dir))
    reader = open_local_store("file", durable(cache_dir))
    try:
        writer.publish(snap(1))
        copy = front_dir(cache_dir)
        shutil.rmtree(copy.parent)
        forged = Snapshot("a", "default", {"application": NamespaceSnapshot(
            "application", {"k": "EVIL"}, "evil")}, 10**17)
        pid = os.fork()
        if pid == 0:  # the other user
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                copy.parent.mkdir(mode=0o777)
                os.chmod(copy.parent, 0o777)
                copy.mkdir()
                code = 0 if LocalCache(copy, "a", "default", KEY).save(forged) else 2
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert copy.parent.stat().st_uid == 65534
        writer.publish(snap(2))
        assert writer.flush(5)
        assert all(p.stat().st_uid == 65534 for p in copy.rglob("*")), "wrote into theirs"
        latest = reader.latest()
        assert latest.namespaces["application"]["k"] == "v2", latest
    finally:
        writer.close()
        reader.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare -m needs root")
def test_two_mount_namespaces_never_share_a_copy(tmp_path):
    """Two containers that share /dev/shm (--ipc=host), each with its own volume mounted at the
    same path, served each other's config when the copy was named by the path alone."""
    import subprocess
    import sys
    cache_dir = tmp_path / "cache"
    code = ("from pathlib import Path; from hotconf.stores.front import front_dir; "
            f"print(front_dir(Path({str(cache_dir)!r})))")
    theirs = subprocess.run(["unshare", "-m", sys.executable, "-c", code], check=True,
                            capture_output=True, text=True, timeout=60).stdout.strip()
    ours = front_dir(cache_dir)
    assert theirs != str(ours) and Path(theirs).parent == ours.parent


def test_a_cache_dir_made_again_keeps_its_copy(tmp_path):
    """The poller's guard makes a deleted cache dir again: workers that start after it must
    find the copy the poller writes, not one of their own that nobody writes."""
    import shutil
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    before = front_dir(cache_dir)
    (tmp_path / "other").mkdir()
    shutil.rmtree(cache_dir)
    os.rename(tmp_path / "other", cache_dir)  # another inode at the same path
    assert front_dir(cache_dir) == before


def test_a_planted_fifo_does_not_hang_a_reader(tmp_path):
    cache = durable(tmp_path / "cache")
    cache.dir.mkdir(parents=True)
    os.mkfifo(cache.path)
    result = []
    reader = threading.Thread(target=lambda: result.append(cache.load()), daemon=True)
    reader.start()
    reader.join(5)
    assert result == [None]


def test_a_copy_that_cannot_be_watched_leaves_the_file_watched_and_is_watched_later(tmp_path):
    from hotconf.stores.watch import FileWatch
    good = tmp_path / "cache" / "x.json"
    opened = tmp_path / "open"
    opened.mkdir()
    opened.chmod(0o777)  # anyone may write and rename here, and no sticky bit
    bad = opened / "copy" / "x.json"
    heard = []
    watch = FileWatch(good, bad)
    watch.start(lambda: heard.append(1))
    try:
        assert not (opened / "copy").exists()  # nothing made in a directory anyone may change
        good.write_bytes(b"1")
        wait_until(lambda: heard, timeout=5, message="the cache file's watch")
        opened.chmod(0o700)
        watch.renew()  # (the reader's safety net)
        count = len(heard)
        bad.write_bytes(b"2")
        wait_until(lambda: len(heard) > count, timeout=5, message="the copy watched after all")
    finally:
        watch.close()


def test_a_reader_watches_the_copy_and_the_file_with_one_inotify_instance(tmp_path):
    """Each inotify instance counts against fs.inotify.max_user_instances (128 by default):
    a reader holds one, with one thread, for both directories."""
    cache_dir = tmp_path / "cache"
    reader = open_local_store("file", durable(cache_dir))
    before = [t for t in threading.enumerate() if t.name == "hotconf-inotify"]
    reader.watch(lambda: None)
    try:
        now = [t for t in threading.enumerate() if t.name == "hotconf-inotify"]
        assert len(now) == len(before) + 1
    finally:
        reader.close()


def test_copies_whose_cache_dir_is_gone_are_removed(tmp_path, monkeypatch):
    from hotconf.stores import front
    cache_dirs = [tmp_path / f"c{i}" for i in range(3)]
    stores = []
    for cache_dir in cache_dirs:
        store = open_local_store("file", durable(cache_dir))
        store.publish(snap(1))
        store.close()
        stores.append(front_dir(cache_dir))
    import shutil
    shutil.rmtree(cache_dirs[0])  # a test's temporary cache dir, gone
    shutil.rmtree(cache_dirs[1])
    old = time.time() - front.STALE_AFTER - 10
    os.utime(stores[0], (old, old))  # untouched for long: removed; c1's is recent: kept
    other = stores[0].parent / "0123456789abcdef"  # another mount namespace's (a container's)
    other.mkdir()
    (other / front.ORIGIN_FILE).write_text(f"mnt:[1]\n{tmp_path / 'gone'}")
    os.utime(other, (old, old))
    fresh = open_local_store("file", durable(tmp_path / "new"))
    try:
        fresh.publish(snap(1))
        assert not stores[0].exists()
        assert stores[1].exists() and stores[2].exists()
        assert other.exists()  # its cache dir cannot be seen from here
    finally:
        fresh.close()


def test_a_writers_temporary_files_are_no_loss_for_the_guard(tmp_path):
    """The poller's guard watches the parts directories for deletions: a part renamed into
    place, or a temporary file removed after a failed write (a full /dev/shm), woke it, and
    it 'put back' a copy that was never lost, every 0.5 s while /dev/shm stayed full."""
    from hotconf.stores.watch import LossWatch
    parts = tmp_path / "parts"
    parts.mkdir()
    woken = threading.Event()
    watch = LossWatch([], [parts])
    watch.start(woken.set)
    try:
        (parts / ".abc.tmp").write_bytes(b"x")
        os.rename(parts / ".abc.tmp", parts / "d1.json")  # a part renamed into place
        (parts / ".def.tmp").write_bytes(b"x")
        os.unlink(parts / ".def.tmp")  # a failed write cleaned up
        assert not woken.wait(0.5)
        os.unlink(parts / "d1.json")  # a real loss
        assert woken.wait(5)
    finally:
        watch.close()


def test_nothing_to_put_back_while_the_copy_is_refused_or_the_file_is_being_written(
        tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    StalledDisk.gate.clear()
    store = open_local_store("file", durable(cache_dir))
    store.cache = StalledDisk(cache_dir, "a", "default", KEY)
    try:
        store.publish(snap(1))
        assert store.holds(snap(1))  # the file is being written behind: not lost
        StalledDisk.gate.set()
        assert store.flush(10) and store.holds(snap(1))

        def full(*args, **kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(store.front.cache, "_save", full)
        store.publish(snap(2))
        assert store.flush(10)
        assert store.holds(snap(2))  # /dev/shm refused it: publishing again would not help
        monkeypatch.undo()
        import shutil
        shutil.rmtree(store.cache.parts_dir)
        assert not store.holds(snap(2))  # a real loss, for the guard to repair
    finally:
        StalledDisk.gate.set()
        store.close()
