"""The registry's files: a dead or reused pid is pruned, a pid of another pid namespace is kept
(it cannot be checked from here), junk is skipped."""

import os
import subprocess
import sys

from hotconf.registry import Registry, pid_namespace, process_started
from hotconf.status import PollerHealth, ProcessRecord


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
        registry.write_process(record)
    assert [r.pid for r in registry.processes()] == [me]
    assert not (registry.dir / f"{gone.pid}.json").exists()  # pruned by the reader
    registry.write_process(reused)
    assert registry.processes() == [] and os.listdir(registry.dir) == []


def test_a_record_from_another_pid_namespace_is_shown_and_never_removed(tmp_path):
    registry = Registry(tmp_path, "demo+default+x")
    theirs = ProcessRecord(pid=dead_pid(), role="poller", pidns=(pid_namespace() or 0) + 1)
    registry.write_process(theirs)
    assert registry.processes() == [theirs]
    assert (registry.dir / f"{theirs.pid}.json").exists()
    registry.write_poller(PollerHealth(pid=theirs.pid, pidns=theirs.pidns))
    assert registry.poller() is not None


def test_junk_in_the_directory_is_skipped(tmp_path):
    registry = Registry(tmp_path, "demo+default+x")
    registry.dir.mkdir(parents=True)
    (registry.dir / "123.json").write_text("{not json")
    (registry.dir / "notes.txt").write_text("hello")
    (registry.dir / "456.json").write_text('{"format": "hotconf-process/9", "pid": 456}')
    assert registry.processes() == [] and registry.poller() is None


def test_a_record_only_moves_forward_when_two_threads_apply_at_once(tmp_path):
    """A push and a request's check may both deliver: the record (and its file) never go back."""
    import threading

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
    assert [r.version for r in registry.processes()] == [200]
