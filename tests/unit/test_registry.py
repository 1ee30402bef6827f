"""The registry's files: a dead or reused pid is pruned, a pid of another pid namespace is
checked through this view of its processes or, where none is in view, kept while fresh; junk
is skipped."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hotconf.registry import FOREIGN_TIMEOUT, Registry, pid_namespace, process_started
from hotconf.status import PollerHealth, ProcessRecord
from tests.helpers import wait_until


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_live_records_stay_dead_and_reused_pids_go(tmp_path):
    registry = Registry(tmp_path, "demo+default+x")
    me = os.getpid()
    mine = ProcessRecord(pid=me, role="reader", started=process_started(me), pidns=pid_namespace())
    gone = ProcessRecord(pid=dead_pid(), role="reader", pidns=pid_namespace())
    reused = ProcessRecord(pid=me, role="reader", started=1, pidns=pid_namespace())  # not us
    for record in (mine, gone):
        registry.write_process(record, 0)
    assert [r.pid for r in registry.processes()] == [me]
    assert not registry.record_path(gone.pid, 0).exists()  # pruned by the reader
    registry.write_process(reused, 0)
    assert registry.processes() == [] and os.listdir(registry.dir) == []


def test_a_record_from_another_pid_namespace_counts_while_it_is_kept_fresh(tmp_path):
    """A container's records, read from the host (or after the container restarted): their
    pids cannot be checked here, so they count while their processes rewrite them."""
    registry = Registry(tmp_path, "demo+default+x")
    now = time.time()
    theirs = ProcessRecord(pid=dead_pid(), role="poller", pidns=(pid_namespace() or 0) + 1,
                           armed_at=now - 600, last_check=now - 30)
    registry.write_process(theirs, 0)
    assert registry.processes(now=now) == [theirs]
    health = PollerHealth(pid=theirs.pid, pidns=theirs.pidns, since=now - 600,
                          last_poll=now - 30)
    registry.write_poller(health)
    assert registry.poller(now) == health
    later = now + FOREIGN_TIMEOUT  # nobody rewrote them: the container is gone
    assert registry.poller(later) is None
    assert registry.processes(now=later) == []
    assert not registry.record_path(theirs.pid, 0).exists()


def test_zombies_and_leftover_temp_files_go(tmp_path):
    registry = Registry(tmp_path, "demo+default+x")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)  # exited, and not reaped: a zombie, whose pid still answers kill(pid, 0)
    try:
        registry.write_process(ProcessRecord(pid=child.pid, role="reader",
                                             started=process_started(child.pid)), 0)
        assert registry.processes() == []
    finally:
        child.wait()
    leftover = registry.dir / ".abc.tmp"
    leftover.write_text("half")
    os.utime(leftover, (time.time() - 120, time.time() - 120))
    registry.processes()
    assert not leftover.exists()


def test_two_roles_of_one_process_are_one_row_and_one_leaving_keeps_the_other(tmp_path):
    registry = Registry(tmp_path, "demo+default+x")
    me = os.getpid()
    poller = ProcessRecord(pid=me, role="poller", started=process_started(me), version=5)
    reader = ProcessRecord(pid=me, role="reader", started=process_started(me), version=5)
    registry.write_process(poller, 0)
    registry.write_process(reader, 1)
    assert registry.processes() == [poller]
    registry.remove_process(me, 1)
    assert registry.processes() == [poller]


def test_junk_in_the_directory_is_skipped(tmp_path):
    registry = Registry(tmp_path, "demo+default+x")
    registry.dir.mkdir(parents=True)
    (registry.dir / "123.json").write_text("{not json")
    (registry.dir / "notes.txt").write_text("hello")
    (registry.dir / "456.json").write_text('{"format": "hotconf-process/9", "pid": 456}')
    assert registry.processes() == [] and registry.poller() is None


def test_a_record_only_moves_forward_when_two_threads_apply_at_once(tmp_path):
    """A push and a request's check may both deliver: the record (and its file) never go back."""

    from hotconf.process.report import ProcessReport
    from hotconf.runtime import ProcessFacts
    from hotconf.snapshot import NamespaceSnapshot, Snapshot

    registry = Registry(tmp_path, "demo+default+x")
    report = ProcessReport(registry, ProcessFacts(), "demo+default+x", stale_after=10)
    snapshots = [Snapshot("demo", "default", {"application": NamespaceSnapshot(
        "application", {"k": str(v)}, f"r{v}")}, v) for v in range(1, 201)]
    halves = [snapshots[::-1][0::2], snapshots[::-1][1::2]]  # newest first: most are refused
    threads = [threading.Thread(target=lambda part=part: [report.applied(s) for s in part])
               for part in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert report.record.version == 200
    wait_until(lambda: [r.version for r in registry.processes()] == [200], timeout=5,
               message="the record written")


def counted_writes(tmp_path, monkeypatch):
    """A report whose registry notes the version of every record it writes."""
    from hotconf.process.report import ProcessReport
    from hotconf.runtime import ProcessFacts

    writes = []
    registry = Registry(tmp_path, "demo+default+x")
    real_write = registry.write_process
    monkeypatch.setattr(registry, "write_process",
                        lambda record, n: (writes.append(record.version), real_write(record, n)))
    report = ProcessReport(registry, ProcessFacts(), "demo+default+x", stale_after=10)
    return registry, report, writes


def test_an_applied_release_is_written_a_moment_later_once_for_a_burst(tmp_path, monkeypatch):
    """The record's write stays out of the moment every worker takes a release in."""
    from hotconf.process.report import APPLIED_WRITE_DELAY
    from hotconf.snapshot import NamespaceSnapshot, Snapshot

    registry, report, writes = counted_writes(tmp_path, monkeypatch)
    report.role("reader")
    for round_ in (1, 2):  # the writer thread serves every release, not only the first
        writes.clear()
        started = time.monotonic()
        for v in (3 * round_, 3 * round_ + 1, 3 * round_ + 2):
            report.applied(Snapshot("demo", "default", {"application": NamespaceSnapshot(
                "application", {"k": str(v)}, f"r{v}")}, v))
        assert writes == []  # not on the delivering thread
        wait_until(lambda: writes, timeout=5, message="the deferred write")
        assert time.monotonic() - started >= APPLIED_WRITE_DELAY * 0.9
        time.sleep(APPLIED_WRITE_DELAY * 1.5)
        assert writes == [3 * round_ + 2]  # once, with the last
        assert [r.version for r in registry.processes()] == [3 * round_ + 2]

    report.applied(Snapshot("demo", "default", {}, 10))
    report.gone()  # the role stopped: the pending write must not put the record back
    time.sleep(APPLIED_WRITE_DELAY * 2)
    assert writes == [8] and registry.processes() == []
    assert APPLIED_WRITE_DELAY < 1  # well inside any stale bound


def test_a_burst_of_releases_is_written_about_once_a_second_and_its_last_one_lands(
        tmp_path, monkeypatch):
    """Releases every 50 ms for 2.5 s: the record is written once per APPLIED_WRITE_GAP (each
    write wakes the writer twice, in every worker at once), not every APPLIED_WRITE_DELAY, and
    the burst's last release is in the record soon after it ends."""
    from hotconf.process.report import APPLIED_WRITE_DELAY, APPLIED_WRITE_GAP
    from hotconf.snapshot import Snapshot

    registry, report, writes = counted_writes(tmp_path, monkeypatch)
    started, v = time.monotonic(), 0
    while time.monotonic() - started < 2.5:
        v += 1
        report.applied(Snapshot("demo", "default", {}, v))
        time.sleep(0.05)
    during = len(writes)
    assert 2 <= during <= 2.5 / APPLIED_WRITE_GAP + 1  # (every 0.25 s: 10)
    wait_until(lambda: [r.version for r in registry.processes()] == [v],
               timeout=APPLIED_WRITE_GAP + APPLIED_WRITE_DELAY + 5, message="the last release")
    report.gone()


def test_a_release_is_applied_while_a_record_write_is_stuck(tmp_path, monkeypatch):
    """A write in progress (a rename into a directory every worker renames into at once) never
    holds up the thread delivering the next release; nor does a removed record come back."""
    from hotconf.process.report import ProcessReport
    from hotconf.runtime import ProcessFacts
    from hotconf.snapshot import Snapshot

    registry = Registry(tmp_path, "demo+default+x")
    real_write = registry.write_process
    entered, release = threading.Event(), threading.Event()

    def stuck_write(record, n):
        entered.set()
        assert release.wait(10)
        real_write(record, n)

    monkeypatch.setattr(registry, "write_process", stuck_write)
    report = ProcessReport(registry, ProcessFacts(), "demo+default+x", stale_after=10)
    report.applied(Snapshot("demo", "default", {}, 1))
    assert entered.wait(5)  # the writer thread is inside its write
    applied = threading.Thread(target=report.applied, args=(Snapshot("demo", "default", {}, 2),))
    started = time.monotonic()
    applied.start()
    applied.join(2)
    assert not applied.is_alive() and time.monotonic() - started < 1
    assert report.record.version == 2
    gone = threading.Thread(target=report.gone)
    gone.start()
    release.set()  # the stuck write ends, then the record is removed and stays removed
    gone.join(5)
    time.sleep(0.6)
    assert registry.processes() == []


def test_a_stop_in_a_signal_handler_during_the_threads_own_write(tmp_path, monkeypatch):
    """SIGTERM's handler stops the Config (gone()) while the same thread is writing the record
    (checked() at a request writes on the request's thread): no hang, no record left."""
    import signal

    from hotconf.process.report import ProcessReport
    from hotconf.runtime import ProcessFacts

    registry = Registry(tmp_path, "demo+default+x")
    report = ProcessReport(registry, ProcessFacts(), "demo+default+x", stale_after=10)
    real_write = registry.write_process
    handled = []

    def interrupted_write(record, n):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs here, inside the write
            pass
        real_write(record, n)

    def handler(signum, frame):
        report.gone()
        handled.append(signum)

    def hung(signum, frame):
        raise TimeoutError("gone() in the handler waits for the write it interrupted")

    monkeypatch.setattr(registry, "write_process", interrupted_write)
    previous = signal.signal(signal.SIGTERM, handler), signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 5)  # a hang fails the test (lock waits are interruptible)
    try:
        report.reloaded("x")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGALRM, previous[1])
    assert handled == [signal.SIGTERM]
    assert registry.processes(prune=False) == []


def test_a_check_that_changes_nothing_rewrites_the_record_only_now_and_then(tmp_path):
    from hotconf.process.report import CHECK_WRITE_EVERY, ProcessReport
    from hotconf.runtime import ProcessFacts

    clock = [1000.0]
    registry = Registry(tmp_path, "demo+default+x")
    report = ProcessReport(registry, ProcessFacts(), "k", stale_after=10, clock=lambda: clock[0])
    report.role("reader")
    written = report.path.stat().st_mtime_ns
    for _ in range(10):  # every 2 s, as while behind: no write
        clock[0] += 2
        report.checked(None)
    assert report.path.stat().st_mtime_ns == written
    clock[0] += CHECK_WRITE_EVERY
    time.sleep(0.01)
    report.checked(None)
    assert report.path.stat().st_mtime_ns != written
    report.path.unlink()  # a wiped cache dir
    report.checked(None)
    assert report.path.exists()


def test_the_pollers_file_says_its_last_success_as_it_happens(tmp_path):
    """A poll answered is written with its success (after the fetches), never a poll late:
    the silence rule reads last_success from the file."""
    from hotconf.process.report import PollerReport

    clock = [1000.0]
    registry = Registry(tmp_path, "demo+default+x")
    report = PollerReport(registry, clock=lambda: clock[0])
    for _ in range(3):
        clock[0] += 60  # a held poll answered 304
        report.polled("http://cs", {"application": 1})
        report.succeeded()
        assert registry.poller(clock[0]).last_success == clock[0]


def test_a_record_is_rewritten_in_place_and_a_shorter_one_leaves_no_tail(tmp_path):
    """After the first write a process's record is rewritten in its own inode (a rename per
    write cost 0.6 ms of CPU per worker per release); a shorter record reads back whole."""
    registry = Registry(tmp_path, "demo+default+x")
    me = os.getpid()
    long = ProcessRecord(pid=me, role="reader", started=process_started(me),
                         pidns=pid_namespace(), releases={f"ns{i}": "k" * 40 for i in range(20)})
    short = ProcessRecord(pid=me, role="poller", started=process_started(me),
                          pidns=pid_namespace())
    registry.write_process(long, 0)
    inode = registry.record_path(me, 0).stat().st_ino
    registry.write_process(short, 0)
    assert registry.record_path(me, 0).stat().st_ino == inode
    assert registry.processes() == [short]


def test_a_record_deleted_or_replaced_under_its_writer_is_made_again(tmp_path):
    registry = Registry(tmp_path, "demo+default+x")
    me = os.getpid()
    record = ProcessRecord(pid=me, role="reader", started=process_started(me),
                           pidns=pid_namespace())
    path = registry.record_path(me, 0)
    registry.write_process(record, 0)
    path.unlink()  # a wiped cache dir, or a pruner
    registry.write_process(replace(record, version=2), 0)
    assert [r.version for r in registry.processes()] == [2]
    os.rename(path, tmp_path / "elsewhere")  # the open file is no longer the record
    path.write_text("{}")
    registry.write_process(replace(record, version=3), 0)
    assert [r.version for r in registry.processes()] == [3]
    assert json.loads((tmp_path / "elsewhere").read_text())["version"] == 2


def test_a_reader_never_sees_a_record_half_rewritten(tmp_path):
    """Long and short records rewritten in place by another process while this one reads:
    every read is a whole record. A read catches a write half done about once in 1,500 here,
    and some of those are valid JSON (spaces of the padding inside a string): the checksum
    tells them, and they are read again."""
    import multiprocessing

    registry = Registry(tmp_path, "demo+default+x")
    me = os.getpid()
    base = ProcessRecord(pid=me, role="reader", started=process_started(me),
                         pidns=pid_namespace())
    records = [replace(base, version=1, releases={f"n{i}": "x" * 300 for i in range(12)}),
               replace(base, version=2)]
    registry.write_process(records[0], 0)
    writer = multiprocessing.get_context("fork").Process(
        target=_rewrite_records, args=(tmp_path, records, 60_000), daemon=True)
    writer.start()
    try:
        reads = torn = 0
        deadline = time.monotonic() + 60
        while writer.is_alive() and time.monotonic() < deadline:
            found = registry.processes(prune=False)
            reads += 1
            torn += found not in ([records[0]], [records[1]])
        assert reads > 1000 and torn == 0
    finally:
        writer.kill()
        writer.join(10)


def _rewrite_records(directory, records, count):
    registry = Registry(directory, "demo+default+x")
    for i in range(count):
        registry.write_process(records[i % 2], 0)


def test_a_record_written_by_an_earlier_hotconf_is_read(tmp_path):
    """Records without the checksum frame (replaced whole by their writers) still count, so a
    host part way through an upgrade shows all its processes."""
    registry = Registry(tmp_path, "demo+default+x")
    me = os.getpid()
    record = ProcessRecord(pid=me, role="reader", started=process_started(me),
                           pidns=pid_namespace(), version=7)
    registry.dir.mkdir(parents=True)
    registry.record_path(me, 0).write_text(json.dumps(record.to_dict()))
    assert registry.processes() == [record]


def test_a_record_is_its_own_json_object_for_an_earlier_hotconf(tmp_path):
    """The CRC is the record's last field: a reader of an earlier version (plain json.loads,
    unknown fields ignored) reads the record and the poller's health as before."""
    registry = Registry(tmp_path, "demo+default+x")
    me = os.getpid()
    record = ProcessRecord(pid=me, role="reader", started=process_started(me),
                           pidns=pid_namespace(), version=3)
    registry.write_process(record, 0)
    registry.write_process(replace(record, version=4, releases={"a": "b" * 200}), 0)
    registry.write_process(record, 0)  # shorter again: padded
    assert ProcessRecord.from_dict(json.loads(registry.record_path(me, 0).read_bytes())) == record
    health = PollerHealth(pid=me, since=1.0)
    registry.write_poller(health)
    assert PollerHealth.from_dict(json.loads((registry.dir / "poller.json").read_bytes())) == health


def test_a_record_written_since_a_pruner_read_it_is_not_removed(tmp_path):
    from hotconf.registry import _read_json, _unlink

    registry = Registry(tmp_path, "demo+default+x")
    path = registry.record_path(os.getpid(), 0)
    registry.write_process(ProcessRecord(pid=os.getpid(), role="reader"), 0)
    _, judged = _read_json(path)
    time.sleep(0.02)
    registry.write_process(ProcessRecord(pid=os.getpid(), role="poller"), 0)  # in place
    _unlink(path, judged)
    assert path.exists()
    _, judged = _read_json(path)
    _unlink(path, judged)
    assert not path.exists()


def test_a_descriptor_the_program_reused_is_left_to_it(tmp_path):
    """The record's descriptor closed behind hotconf's back (a daemonizer's closerange) and
    its number given to the app's log: hotconf makes its record again elsewhere and neither
    writes into nor closes the app's file."""
    registry = Registry(tmp_path, "demo+default+x")
    record = ProcessRecord(pid=os.getpid(), role="reader")
    registry.write_process(record, 0)
    fd = registry._files._open[registry.record_path(os.getpid(), 0)].fd
    os.close(fd)
    log = tmp_path / "app.log"
    reused = os.open(log, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    try:
        assert reused == fd
        os.write(reused, b"app log line\n")
        registry.write_process(replace(record, version=9), 0)
        os.write(reused, b"second line\n")
        assert log.read_bytes() == b"app log line\nsecond line\n"
        assert [r.version for r in registry.processes()] == [9]
        registry.close()
        os.fstat(reused)  # still open: not hotconf's to close
    finally:
        os.close(reused)


def test_every_descriptor_is_closed_when_the_role_stops_or_the_registry_goes(tmp_path):
    import gc

    def open_fds():
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    for _ in range(5):
        registry = Registry(tmp_path, "demo+default+x")
        registry.write_process(ProcessRecord(pid=os.getpid(), role="poller"), 0)
        registry.write_poller(PollerHealth(pid=os.getpid(), since=1.0))
        registry.close()
    assert open_fds() == before
    for _ in range(5):  # dropped without close(): a role that never started
        registry = Registry(tmp_path, "demo+default+x")
        registry.write_poller(PollerHealth(pid=os.getpid(), since=1.0))
        del registry
    gc.collect()
    assert open_fds() == before


def test_a_record_cut_short_by_its_dead_writer_is_removed(tmp_path):
    """SIGKILL or a full disk in the middle of a write leaves a record that never reads whole
    again: once its process is gone and it is a minute old, a reader removes it. A live
    process's is left for it to mend."""
    registry = Registry(tmp_path, "demo+default+x")
    registry.dir.mkdir(parents=True)
    old = time.time() - 120
    for pid in (dead_pid(), os.getpid()):
        path = registry.record_path(pid, 0)
        path.write_bytes(b'{"format":"hotconf-process/1","pid":')
        os.utime(path, (old, old))
    assert registry.processes() == []
    assert [p.name for p in registry.dir.iterdir()] == [f"{os.getpid()}-0.json"]


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is missing")
def test_a_containers_records_are_checked_from_the_host(tmp_path):
    """`hotconf status` on the host, reading a container's records: a process it can see in
    the container's pid namespace is checked by its host pid, so a worker SIGKILLed in there
    is not listed (it was, for FOREIGN_TIMEOUT, as a record that cannot be checked)."""
    from hotconf.registry import Namespaces

    writer = tmp_path / "writer.py"
    writer.write_text(
        "import os, sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from hotconf.registry import Registry, pid_namespace, process_started\n"
        "from hotconf.status import ProcessRecord\n"
        "me = os.getpid()\n"
        f"Registry({str(tmp_path)!r}, 'demo+default+x').write_process(ProcessRecord(\n"
        "    pid=me, role='reader', started=process_started(me), pidns=pid_namespace(),\n"
        "    armed_at=time.time()), 0)\n"
        "print(me, flush=True)\n"
        "time.sleep(60)\n")
    container = subprocess.Popen(  # PID 1 a shell, as in a container whose worker dies
        ["unshare", "-pf", "--mount-proc", "sh", "-c", f"{sys.executable} {writer} & wait; sleep 60"],
        stdout=subprocess.PIPE, start_new_session=True)
    try:
        inner = int(container.stdout.readline())
        registry = Registry(tmp_path, "demo+default+x")
        (record,) = registry.processes()
        assert record.pid == inner and record.pidns != pid_namespace()
        visible, ours = Namespaces().find(inner, record.pidns)
        assert visible and ours is not None and ours != inner
        os.kill(ours, signal.SIGKILL)
        wait_until(lambda: registry.processes() == [], timeout=10, message="the dead one pruned")
        assert not registry.record_path(inner, 0).exists()
    finally:
        os.killpg(container.pid, signal.SIGKILL)
        container.wait(10)
        container.stdout.close()
