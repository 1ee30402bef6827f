"""Forks after hotconf started, arming that fails halfway, Configs made per request, reads while
nothing is published yet, and the API's sharp edges: each in real processes against the real
dev server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from hotconf import Config
from tests.helpers import wait_until


class Script:
    """A Python script in its own session, talking JSON lines; its whole process group is
    killed at the end of the test, whatever happened."""

    def __init__(self, body: str, env=None):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(body)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, **(env or {})})

    def read(self, timeout: float = 30.0) -> dict:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"no answer from the script within {timeout}s:\n{self.err()}")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the script ended:\n{self.err()}")
        return json.loads(line)

    def say(self, text: str = "") -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def err(self) -> str:
        self.kill()
        return self.proc.stderr.read()[-4000:]

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(10)


@pytest.fixture
def script():
    started = []

    def start(body: str, env=None) -> Script:
        s = Script(body, env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def test_children_forked_during_releases_rearm_and_never_hold_the_host_back(devserver,
                                                                             cache_dir, script):
    """A polling process forks 30 long-lived children (multiprocessing, fork) while releases
    stream in. Each child re-arms as a reader on its first read, never serves a value older than
    its parent had at the fork, never hangs; the parent keeps getting releases while children
    forked mid-write live on (a write lock inherited by a child used to stall the poller)."""
    devserver.state.publish("demo", "default", "application", {"n": "0"})
    s = script(f"""
        import json, multiprocessing, os, sys, time
        from hotconf import Config
        cfg = Config(app_id="demo", server={devserver.url!r}, cache_dir={str(cache_dir)!r})
        cfg.get("n")
        print(json.dumps({{"role": cfg.role}}), flush=True)
        ctx = multiprocessing.get_context("fork")
        queue, stop = ctx.Queue(), ctx.Event()

        def child(at_fork):
            start = time.monotonic()
            value = int(cfg.get("n"))
            queue.put((at_fork, value, cfg.role, time.monotonic() - start))
            stop.wait(60)

        children = []
        for _ in range(30):
            p = ctx.Process(target=child, args=(int(cfg.get("n")),), daemon=True)
            p.start()
            children.append(p)
            time.sleep(0.03)
        print(json.dumps({{"children": [queue.get(timeout=20) for _ in children]}}), flush=True)
        sys.stdin.readline()
        deadline = time.monotonic() + 15
        while cfg.get("n") != "-1" and time.monotonic() < deadline:
            time.sleep(0.02)
        print(json.dumps({{"parent": cfg.get("n"), "role": cfg.role}}), flush=True)
        stop.set()
    """)
    assert s.read() == {"role": "poller"}
    n = 0
    deadline = time.monotonic() + 20
    children = None
    while children is None and time.monotonic() < deadline:
        n += 1
        devserver.state.publish("demo", "default", "application", {"n": str(n)})
        time.sleep(0.01)
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(s.proc.stdout, selectors.EVENT_READ)
        if sel.select(0):
            children = s.read()["children"]
    assert children is not None, "the children did not all answer"
    for at_fork, value, role, seconds in children:
        assert value >= at_fork, (at_fork, value)
        assert role == "reader"
        assert seconds < 10
    s.say()  # the children live on while the last release goes out
    devserver.state.publish("demo", "default", "application", {"n": "-1"})
    assert s.read() == {"parent": "-1", "role": "poller"}


def test_a_config_per_request_leaks_nothing(apollo, cache_dir, script):
    """50 requests each make a Config, read it and drop it: threads, descriptors, inotify
    instances and the long polls held at the config service (30 s holds) do not pile up."""
    devserver = apollo
    devserver.state.publish("demo", "default", "application", {"k": "v"})
    s = script(f"""
        import gc, json, os, threading, time
        from hotconf import Config

        def resources():
            links = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    links.append(os.readlink(f"/proc/self/fd/{{fd}}"))
                except OSError:
                    pass  # the directory listing's own descriptor, closed meanwhile
            inotify = sum(1 for link in links if "inotify" in link)
            return threading.active_count(), len(links), inotify

        def request():
            cfg = Config(app_id="demo", server={devserver.url!r}, cache_dir={str(cache_dir)!r})
            return cfg.get("k")

        request()
        time.sleep(0.5)
        before = resources()
        for _ in range(50):
            assert request() == "v"
        gc.collect()
        deadline = time.monotonic() + 10  # released roles stop on a thread of their own
        while time.monotonic() < deadline and resources()[0] > before[0]:
            time.sleep(0.1)
        print(json.dumps({{"before": before, "after": resources()}}), flush=True)
        import sys
        sys.stdin.readline()
    """)
    result = s.read()
    # The script still lives; an aborted poll is noticed by the dev server within 0.1 s, a
    # leaked one would stay open for its 30 s hold.
    wait_until(lambda: devserver.state.stats()["long_polls_open"] <= 1, timeout=3,
               message="at most one long poll held")
    s.say()
    threads_before, fds_before, inotify_before = result["before"]
    threads_after, fds_after, inotify_after = result["after"]
    assert threads_after <= threads_before + 1, result
    assert fds_after <= fds_before + 2, result
    assert inotify_after <= max(inotify_before, 1), result


def test_equal_configs_share_one_poller_and_a_crowd_is_reported(make_config, hotconf_logs,
                                                                devserver):
    devserver.state.publish("demo", "default", "application", {"k": "v"})
    configs = [make_config() for _ in range(12)]
    assert all(c.get("k") == "v" for c in configs)
    assert {c.role for c in configs} == {"poller"}
    wait_until(lambda: devserver.state.stats()["long_polls_open"] == 1, message="one long poll")
    time.sleep(0.5)
    assert devserver.state.stats()["long_polls_open"] == 1
    assert "Config objects for demo+default" in hotconf_logs.text
    devserver.state.publish("demo", "default", "application", {"k": "w"})
    wait_until(lambda: all(c.get("k") == "w" for c in configs), message="every Config")


def test_only_the_first_read_waits_while_nothing_is_published(tmp_path, script):
    """Apollo down and no cache: the first read in a reader waits for the poller's first load
    (bounded), every later read fails fast instead of waiting the full timeout each time."""
    cache = str(tmp_path / "cache")
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    poller = script(f"""
        import json, sys
        from hotconf import Config
        cfg = Config(app_id="demo", config_service={dead!r}, cache_dir={cache!r},
                     connect_timeout=0.3, fetch_timeout=0.5)
        try:
            cfg.get("k")
        except Exception as exc:
            print(json.dumps({{"role": cfg.role, "error": type(exc).__name__}}), flush=True)
        sys.stdin.readline()
    """)
    assert poller.read() == {"role": "poller", "error": "ConfigUnavailableError"}
    reader = script(f"""
        import json, time
        from hotconf import Config
        cfg = Config(app_id="demo", config_service={dead!r}, cache_dir={cache!r},
                     connect_timeout=0.3, fetch_timeout=0.5)
        timings = []
        for _ in range(4):
            start = time.monotonic()
            try:
                cfg.get("k")
                outcome = "value"
            except Exception as exc:
                outcome = type(exc).__name__
            timings.append((outcome, time.monotonic() - start))
        print(json.dumps({{"role": cfg.role, "reads": timings}}), flush=True)
    """)
    result = reader.read()
    assert result["role"] == "reader"
    outcomes = [o for o, _ in result["reads"]]
    assert outcomes == ["ConfigUnavailableError"] * 4
    first, *later = [t for _, t in result["reads"]]
    assert 1.0 <= first <= 5.0, result  # connect + fetch + 1 s
    assert all(t < 0.2 for t in later), result


def test_arming_that_fails_serves_the_cache_and_retries(devserver, cache_dir, script):
    """A reader whose file watcher cannot start (every inotify instance of the user taken) is
    torn down whole; reads are served from the host's cache at once, and once instances are free
    again the retry arms it and releases flow."""
    devserver.state.publish("demo", "default", "application", {"k": "v1"})
    poller = Config(app_id="demo", server=devserver.url, cache_dir=cache_dir)
    try:
        assert poller.get("k") == "v1"
        s = script(f"""
            import ctypes, json, os, sys, time
            libc = ctypes.CDLL(None, use_errno=True)
            held = []
            while True:  # take every inotify instance this user may have
                fd = libc.inotify_init1(0)
                if fd < 0:
                    break
                held.append(fd)
            from hotconf import Config
            cfg = Config(app_id="demo", server={devserver.url!r}, cache_dir={str(cache_dir)!r})
            start = time.monotonic()
            value = cfg.get("k")
            print(json.dumps({{"value": value, "seconds": time.monotonic() - start,
                               "role": cfg.role, "held": len(held)}}), flush=True)
            for fd in held:
                os.close(fd)
            sys.stdin.readline()
            deadline = time.monotonic() + 15  # the retry comes after about a second
            while cfg.get("k") != "v2" and time.monotonic() < deadline:
                time.sleep(0.05)
            print(json.dumps({{"value": cfg.get("k"), "role": cfg.role}}), flush=True)
        """)
        first = s.read()
        assert first["held"] > 0
        assert first["value"] == "v1" and first["seconds"] < 2.0, first
        assert first["role"] == "idle"  # not armed: torn down, to be retried
        devserver.state.publish("demo", "default", "application", {"k": "v2"})
        s.say()
        assert s.read() == {"value": "v2", "role": "reader"}
        assert "could not start in process" in s.err()
    finally:
        poller.stop()


def test_reload_on_a_string_is_one_pattern(make_config, devserver):
    devserver.state.publish("demo", "default", "application", {"db.url": "a"})
    fired = []
    cfg = make_config(reload_on="db.url", reload="callback", on_reload=fired.append,
                      reload_wait=(0.1, 0.5))
    assert cfg.options.reload_policy.patterns == ("db.url",)
    assert cfg.get("db.url") == "a"
    devserver.state.publish("demo", "default", "application", {"db.url": "b"})
    wait_until(lambda: fired, message="the reload callback")
    assert fired[0].changes == {("application", "db.url"): ("a", "b")}


def test_a_stopped_config_answers_the_same_in_a_forked_child(devserver, cache_dir):
    devserver.state.publish("demo", "default", "application", {"k": "v"})
    cfg = Config(app_id="demo", server=devserver.url, cache_dir=cache_dir)
    assert cfg.get("k") == "v"
    cfg.stop()
    assert cfg.get("k") == "v"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, repr(cfg.get("k")).encode())
        except Exception as exc:  # noqa: BLE001
            os.write(write, f"error {exc}".encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 200).decode() == "'v'"
    os.close(read)


def test_a_disk_that_refuses_then_accepts_delivers_the_pending_release(devserver, cache_dir,
                                                                        script):
    """The poller's disk refuses writes (RLIMIT_FSIZE as a full disk) when a release comes;
    once it accepts them again, the other processes get that release with no new publish."""
    devserver.state.publish("demo", "default", "application", {"k": "v1"})
    body = f"""
        import json, resource, signal, sys, time
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        from hotconf import Config
        cfg = Config(app_id="demo", server={devserver.url!r}, cache_dir={str(cache_dir)!r})
        print(json.dumps({{"k": cfg.get("k"), "role": cfg.role}}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
            if command == "full":  # the soft limit: it can be raised again
                resource.setrlimit(resource.RLIMIT_FSIZE, (16, hard))
            elif command == "free":
                resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
            print(json.dumps({{"k": cfg.get("k"), "role": cfg.role}}), flush=True)
    """
    poller = script(body)
    assert poller.read() == {"k": "v1", "role": "poller"}
    reader = script(body)
    assert reader.read() == {"k": "v1", "role": "reader"}
    poller.say("full")
    poller.read()
    devserver.state.publish("demo", "default", "application", {"k": "v2"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        poller.say()
        if poller.read()["k"] == "v2":
            break
    time.sleep(1.5)
    reader.say()
    assert reader.read()["k"] == "v1"  # the disk refused it: the reader cannot know yet
    poller.say("free")
    poller.read()
    deadline = time.monotonic() + 15
    value = None
    while time.monotonic() < deadline and value != "v2":
        reader.say()
        value = reader.read()["k"]
        time.sleep(0.2)
    assert value == "v2"
