"""The file written behind the push: newest first, never lost to a refusing disk, flushed at
stop and exit, and sane in a forked child."""

import logging
import os
import threading
import time

from hotconf.backoff import Backoff
from hotconf.snapshot import NamespaceSnapshot, Snapshot
from hotconf.stores.behind import WriteBehind
from tests.helpers import wait_until


def snap(version):
    return Snapshot("a", "default", {"application": NamespaceSnapshot(
        "application", {"k": f"v{version}"}, f"r{version}")}, version)


class Disk:
    """A write callable that records versions, can be held (a stalled fsync) or refuse."""

    def __init__(self):
        self.written, self.attempts = [], []
        self.gate = threading.Event()
        self.gate.set()
        self.refuse = False

    def __call__(self, snapshot):
        self.attempts.append(snapshot.version)
        assert self.gate.wait(10)
        if self.refuse:
            return False
        self.written.append(snapshot.version)
        return True


def quick():
    return Backoff(0.05, 0.1, jitter=0)


def writing_first(disk, version=1):
    """A writer whose write of ``version`` has begun, on a disk that stalls until let go."""
    behind = WriteBehind(disk, "test file", quick(), linger=0)
    disk.gate.clear()
    behind.put(snap(version))
    wait_until(lambda: disk.attempts, timeout=5, message="the first write to begin")
    return behind


def test_put_returns_at_once_while_the_disk_stalls_and_the_newest_is_written_last():
    disk = Disk()
    behind = WriteBehind(disk, "test file", quick(), linger=0)
    disk.gate.clear()  # the first write stalls in its fsync
    started = time.monotonic()
    for version in range(1, 6):
        behind.put(snap(version))
    assert time.monotonic() - started < 0.5  # the publisher never waited for the disk
    wait_until(lambda: disk.attempts == [1], timeout=5, message="the first write to begin")
    disk.gate.set()
    assert behind.flush(5)
    # What a newer one replaced while the disk stalled is never written: 2, 3 and 4 are gone.
    assert disk.written == [1, 5]


def test_an_older_snapshot_never_replaces_a_newer_one_pending():
    disk = Disk()
    behind = writing_first(disk)
    behind.put(snap(9))
    behind.put(snap(4))  # a restore racing a release
    disk.gate.set()
    assert behind.flush(5)
    assert disk.written == [1, 9]


def test_a_refused_write_is_retried_until_the_disk_takes_it(caplog):
    disk = Disk()
    disk.refuse = True
    behind = WriteBehind(disk, "test file", quick(), linger=0)
    behind.put(snap(1))
    wait_until(lambda: len(disk.attempts) >= 3, timeout=5, message="retries after a backoff")
    assert not behind.flush(0.5)  # refused: flush says so instead of waiting forever
    assert disk.written == []
    with caplog.at_level(logging.INFO, logger="hotconf"):
        disk.refuse = False
        wait_until(lambda: disk.written, timeout=5, message="the write again, with no put")
        assert behind.flush(5)
    assert disk.written == [1]
    assert "holds snapshot v1 again" in caplog.text
    attempts = len(disk.attempts)
    time.sleep(0.3)
    assert len(disk.attempts) == attempts  # no retry once it is written: no busy loop


def test_a_newer_snapshot_ends_a_backoff_at_once():
    disk = Disk()
    disk.refuse = True
    behind = WriteBehind(disk, "test file", Backoff(30, 30, jitter=0), linger=0)
    behind.put(snap(1))
    wait_until(lambda: disk.attempts == [1], timeout=5, message="the first attempt")
    disk.refuse = False
    behind.put(snap(2))
    assert behind.flush(5)  # not after the 30 s backoff
    assert disk.written == [2]


def test_close_writes_what_is_pending_then_stops_retrying():
    disk = Disk()
    behind = WriteBehind(disk, "test file", quick(), linger=0)
    disk.gate.clear()
    behind.put(snap(1))
    behind.put(snap(2))
    threading.Timer(0.3, disk.gate.set).start()
    behind.close(5)
    assert disk.written == [1, 2]
    disk.refuse = True
    behind.put(snap(3))
    behind.close(0.3)
    attempts = len(disk.attempts)
    time.sleep(0.4)
    assert len(disk.attempts) <= attempts + 1  # closed: no more backoff rounds
    assert disk.written == [1, 2]


def test_a_child_forked_mid_write_writes_its_own_and_not_the_parents():
    disk = Disk()
    behind = writing_first(disk)
    behind.put(snap(2))  # pending in the parent at the fork
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread is not here, its lock may have been held
        code = 1
        try:
            disk.gate.set()
            behind.put(snap(7))
            code = 0 if behind.flush(5) and disk.written == [7] else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    disk.gate.set()
    assert behind.flush(5)
    assert disk.written == [1, 2]


def test_no_thread_to_be_had_writes_on_the_callers_thread(monkeypatch):
    """A pids limit (or the interpreter's exit) refuses a thread: the snapshot is written at
    once instead, and the writer is not left believing one runs (it wrote nothing, ever)."""
    disk = Disk()
    behind = WriteBehind(disk, "test file", quick(), linger=5)

    def no_thread(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    started = time.monotonic()
    behind.put(snap(1))
    assert disk.written == [1] and time.monotonic() - started < 2  # (and no 5 s linger)
    monkeypatch.undo()
    behind.put(snap(2))
    assert behind.flush(5)
    assert disk.written == [1, 2]


def test_flush_says_false_for_a_refused_write_dropped_at_close():
    disk = Disk()
    disk.refuse = True
    behind = WriteBehind(disk, "test file", quick(), linger=0)
    behind.put(snap(1))
    behind.close(0.5)
    wait_until(lambda: not behind.busy, timeout=5, message="the writer to end")
    assert not behind.flush(0.1)


def test_a_put_as_the_writer_finishes_is_never_left_unwritten(monkeypatch):
    """The writer found nothing pending and was about to end: a put in that instant saw it
    still busy and started no thread, and the snapshot waited for the next release (or was
    lost at exit). The put is made right at that instant, on the writer's own thread."""
    disk = Disk()
    behind = WriteBehind(disk, "test file", quick(), linger=0)
    real = behind._write_all
    late = []

    def write_all_then_a_put(retry):
        real(retry)
        if not late:
            late.append(True)
            behind.put(snap(2))

    monkeypatch.setattr(behind, "_write_all", write_all_then_a_put)
    behind.put(snap(1))
    wait_until(lambda: disk.written == [1, 2], timeout=5, message="the late put written")
    assert behind.flush(5)


def test_a_burst_is_written_once_after_the_linger_and_flush_does_not_linger():
    """The write waits a moment before it starts, so the file's event reaches the readers
    after they took the release from the front (not among them), and a burst is one write."""
    disk = Disk()
    behind = WriteBehind(disk, "test file", quick(), linger=0.3)
    for version in range(1, 6):
        behind.put(snap(version))
    time.sleep(0.1)
    assert disk.attempts == []  # still lingering
    wait_until(lambda: disk.written, timeout=5, message="the write after the linger")
    assert disk.written == [5]
    behind.put(snap(6))
    started = time.monotonic()
    assert behind.flush(5)
    assert time.monotonic() - started < 0.25 and disk.written == [5, 6]
