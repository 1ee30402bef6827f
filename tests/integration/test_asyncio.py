"""asyncio and FastAPI: ``await cfg.ready()``, async listeners on the loop, the lifespan, the
typed-settings dependency. In process against the dev server, then a real FastAPI app under
``uvicorn --workers 2`` and ``gunicorn -k uvicorn.workers.UvicornWorker -w 2`` (with and without
``--preload``), with the config service slow to answer behind a proxy.

"The loop is never blocked longer than 50 ms by hotconf" is measured by a loop-lag probe (a task
sleeping 5 ms in a loop, see tests/servers/lag_probe.py) net of CPU contention: from each
overshoot the probe subtracts the time the kernel kept the process's threads waiting on a run
queue (/proc/self/task/*/schedstat), i.e. time another process had the CPU, whether the loop's
thread waited for it or a thread holding the GIL did."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from hotconf import Config, ConfigUnavailableError, aio
from hotconf.integrations.asyncio import lifespan
from hotconf.integrations.fastapi import settings
from tests.faulty_proxy import FaultyProxy
from tests.helpers import free_port, wait_until
from tests.servers.lag_probe import LagProbe
from tests.servers_harness import BIN, SERVERS_DIR, ServerProcess, assert_one_long_poll, every_worker

ROOT = Path(__file__).resolve().parents[2]
LAG_BOUND = 0.050  # seconds: the most hotconf may hold the loop, net of CPU contention
SLOW = 1.5  # seconds the config service takes to answer, during startup


def run(coro, timeout: float = 30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# -- in process ------------------------------------------------------------------------------------


def test_ready_loads_off_the_loop_while_the_loop_keeps_running(devserver, cache_dir):
    devserver.state.publish("demo", "default", "application", {"k": "v"})
    with FaultyProxy(devserver.url, delay=SLOW) as proxy:
        cfg = Config(app_id="demo", config_service=proxy.url, cache_dir=cache_dir)
        try:
            async def main():
                probe = LagProbe()
                probe.start()
                await asyncio.sleep(0.02)
                probe.begin("ready")
                assert await cfg.ready() is cfg
                window = await probe.end("ready")
                await probe.stop()
                return window, cfg.get("k"), cfg.role

            window, value, role = run(main())
        finally:
            cfg.stop()
    assert value == "v" and role == "poller"
    assert window["seconds"] >= SLOW, window  # the slow fetch ran while the probe did
    assert window["max_net"] < LAG_BOUND, window
    assert window["samples"] >= SLOW / 0.005 / 3, window  # the loop kept turning meanwhile


def test_a_first_read_on_the_loop_would_block_it(devserver, cache_dir):
    """The control: what ready() avoids (the probe sees the whole slow fetch)."""
    devserver.state.publish("demo", "default", "application", {"k": "v"})
    with FaultyProxy(devserver.url, delay=0.5) as proxy:
        cfg = Config(app_id="demo", config_service=proxy.url, cache_dir=cache_dir)
        try:
            async def main():
                probe = LagProbe()
                probe.start()
                await asyncio.sleep(0.05)
                probe.begin("read")
                value = cfg.get("k")
                await asyncio.sleep(0.05)
                window = await probe.end("read")
                await probe.stop()
                return window, value

            window, value = run(main())
        finally:
            cfg.stop()
    assert value == "v" and window["max_net"] >= 0.45, window


def test_async_listeners_run_on_the_loop_one_at_a_time_in_release_order(devserver, make_config):
    devserver.state.publish("demo", "default", "application", {"seq": "0"})
    cfg = make_config()
    calls, busy, sync_threads = [], {"now": 0, "max": 0}, []

    @cfg.on_change(keys=["seq"])
    async def seq_changed(event):
        busy["now"] += 1
        busy["max"] = max(busy["max"], busy["now"])
        calls.append((int(event.changes["seq"][1]), threading.get_ident(),
                      asyncio.get_running_loop()))
        await asyncio.sleep(0.15)  # slow: the next releases arrive meanwhile
        busy["now"] -= 1

    class Callable:  # an object whose __call__ is async counts as an async listener
        def __init__(self):
            self.seen = []

        async def __call__(self, event):
            self.seen.append((int(event.changes["seq"][1]), threading.get_ident()))

    obj = Callable()
    cfg.on_change(obj, keys=["seq"])
    cfg.on_change(lambda e: sync_threads.append(threading.current_thread().name), keys=["seq"])

    async def main():
        await cfg.ready()
        for seq in range(1, 6):
            devserver.state.publish("demo", "default", "application", {"seq": str(seq)})
            await asyncio.sleep(0.1)
        for _ in range(200):
            if calls and calls[-1][0] == 5 and busy["now"] == 0:
                break
            await asyncio.sleep(0.05)
        return threading.get_ident(), asyncio.get_running_loop()

    thread, loop = run(main())
    seqs = [c[0] for c in calls]
    assert seqs == sorted(set(seqs)) and seqs[-1] == 5 and len(seqs) >= 3, seqs
    assert {(c[1], c[2]) for c in calls} == {(thread, loop)}
    assert busy["max"] == 1
    assert [s for s, _ in obj.seen] == sorted(set(s for s, _ in obj.seen))
    assert {t for _, t in obj.seen} == {thread}
    assert sync_threads and all(name.startswith("hotconf-listener") for name in sync_threads)


def test_a_failing_async_listener_is_logged_and_gets_the_next_change(devserver, make_config,
                                                                       hotconf_logs):
    devserver.state.publish("demo", "default", "application", {"seq": "0"})
    cfg = make_config()
    seen = []

    @cfg.on_change
    async def flaky(event):
        seen.append(event.changes["seq"][1])
        if len(seen) == 1:
            raise RuntimeError("listener bug")

    async def main():
        await cfg.ready()
        for seq in ("1", "2"):
            devserver.state.publish("demo", "default", "application", {"seq": seq})
            for _ in range(100):
                if seq in seen:
                    break
                await asyncio.sleep(0.05)

    run(main())
    assert seen == ["1", "2"]
    assert "listener bug" in hotconf_logs.text and "async change listener" in hotconf_logs.text


def test_changes_wait_for_a_loop_with_one_warning_and_a_closed_loop_breaks_nothing(
        devserver, make_config, hotconf_logs):
    """No loop bound yet: the changes wait (one warning says why) and run, in order, on the
    loop that ready() binds. After that loop closed: hotconf's threads go on (sync listeners
    still fire) and the next loop gets what came meanwhile."""
    devserver.state.publish("demo", "default", "application", {"seq": "0"})
    cfg = make_config()
    assert cfg.get("seq") == "0"  # loaded without a loop
    seen, sync_seen = [], []

    @cfg.on_change
    async def listener(event):
        seen.append((event.changes["seq"][1], asyncio.get_running_loop()))

    cfg.on_change(lambda e: sync_seen.append(e.changes["seq"][1]))

    def publish_and_wait(seq):
        devserver.state.publish("demo", "default", "application", {"seq": seq})
        wait_until(lambda: seq in sync_seen, message=f"seq {seq} delivered")

    publish_and_wait("1")
    publish_and_wait("2")
    assert seen == []
    warnings = [r for r in hotconf_logs.records if "no running event loop is bound" in r.message]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING

    async def first():
        await cfg.ready()
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.02)
        return asyncio.get_running_loop()

    loop1 = run(first())
    assert [s for s, _ in seen] == ["1", "2"] and {lp for _, lp in seen} == {loop1}
    assert loop1.is_closed()
    publish_and_wait("3")  # the bound loop is closed: kept, no exception on hotconf's thread
    publish_and_wait("4")
    assert len(seen) == 2

    async def second():
        await cfg.ready()
        for _ in range(100):
            if len(seen) == 4:
                break
            await asyncio.sleep(0.02)
        return asyncio.get_running_loop()

    loop2 = run(second())
    assert [s for s, _ in seen] == ["1", "2", "3", "4"] and seen[-1][1] is loop2
    assert "Traceback" not in hotconf_logs.text  # no thread of hotconf died


def test_changes_kept_without_a_loop_are_bounded(monkeypatch, hotconf_logs):
    """At most PENDING_MAX changes per listener wait for a loop: the oldest go, and the log
    says how many when the listener runs."""
    monkeypatch.setattr(aio, "PENDING_MAX", 3)
    ref, seen = aio.LoopRef(), []

    async def listener(n):
        seen.append(n)

    mailbox = aio.LoopMailbox(listener, "change listener", ref)
    mailbox.post([(n,) for n in range(1, 6)])

    async def main():
        ref.bind(asyncio.get_running_loop())
        for _ in range(100):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.01)

    run(main())
    assert seen == [3, 4, 5]
    assert "missed 2 older changes" in hotconf_logs.text


def test_async_model_listener_and_the_settings_dependency(devserver, make_config):
    devserver.state.publish("demo", "default", "application",
                            {"svc.url": "http://a", "svc.timeout": "2"})
    cfg = make_config()

    @dataclass
    class Service:
        url: str
        timeout: float = 1.0

    dependency = settings(cfg, Service, prefix="svc")
    changes = []

    async def main():
        await cfg.ready()
        first, again = await dependency(), await dependency()
        assert first is again and isinstance(first, Service)  # bound once, not per request
        assert (first.url, first.timeout) == ("http://a", 2.0)

        @first.on_change
        async def changed(old, new):
            changes.append((old.url, new.url, threading.get_ident()))

        devserver.state.publish("demo", "default", "application",
                                {"svc.url": "http://b", "svc.timeout": "3"})
        for _ in range(100):
            if changes:
                break
            await asyncio.sleep(0.05)
        return first, threading.get_ident()

    live, thread = run(main())
    assert (live.url, live.timeout) == ("http://b", 3.0)
    assert changes == [("http://a", "http://b", thread)]


def test_lifespan_composes_with_the_apps_and_stops_the_config(devserver, make_config):
    """Outer to inner: hotconf ready, then the app's lifespan (which reads config and yields
    state); at shutdown the app's ends first, then the Config stops. A bare async generator
    function works too, and FastAPI passes the state on."""
    devserver.state.publish("demo", "default", "application", {"greeting": "hello"})
    order = []
    cfg, cfg2 = make_config(), make_config(app_id="other")
    devserver.state.publish("other", "default", "application", {"greeting": "hi"})

    @asynccontextmanager
    async def app_lifespan(app):
        order.append(("app start", cfg.role, cfg.get("greeting")))
        yield {"greeting": cfg.get("greeting")}
        order.append(("app end", cfg.role))

    async def bare(app):
        order.append(("bare start", cfg2.role))
        yield

    app = FastAPI(lifespan=lifespan(cfg, app_lifespan))

    @app.get("/")
    async def index(request: Request):
        return {"state": request.state.greeting, "now": cfg.get("greeting")}

    with TestClient(app) as client:
        assert client.get("/").json() == {"state": "hello", "now": "hello"}
    assert order == [("app start", "poller", "hello"), ("app end", "poller")]
    assert cfg.role == "idle" and cfg._binding.stopped  # stopped at shutdown
    assert cfg.get("greeting") == "hello"  # reads keep answering from the last snapshot

    with TestClient(FastAPI(lifespan=lifespan(cfg2, bare, stop=False))):
        pass
    assert order[-1] == ("bare start", "poller") and cfg2.role == "poller"  # not stopped


def test_lifespan_without_config_fails_the_startup_unless_not_required(make_config):
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ConfigUnavailableError), TestClient(FastAPI(lifespan=lifespan(
            make_config(config_service=dead), timeout=1.0))):
        pass
    assert 1.0 <= time.monotonic() - started < 5  # it waited for the timeout, no longer
    cfg = make_config(config_service=dead)
    with TestClient(FastAPI(lifespan=lifespan(cfg, required=False, timeout=0.2))), \
            pytest.raises(ConfigUnavailableError):
        cfg.get("greeting")


def test_ready_waits_for_the_pollers_retry_within_its_timeout(devserver, cache_dir):
    """The config service fails the first fetches (no cache yet): a first read would give up,
    ready() waits for the poller's retry and returns once it loaded."""
    devserver.state.publish("demo", "default", "application", {"k": "v"})
    with FaultyProxy(devserver.url) as proxy:
        proxy.fault("/configs", "http_500")
        cfg = Config(app_id="demo", config_service=proxy.url, cache_dir=cache_dir)
        threading.Timer(1.5, proxy.heal).start()
        try:
            async def main():
                started = time.monotonic()
                await cfg.ready(timeout=15)
                return time.monotonic() - started, cfg.get("k")

            elapsed, value = run(main())
        finally:
            cfg.stop()
    assert value == "v" and 1.5 <= elapsed < 15, elapsed


def test_the_core_install_imports_no_web_framework():
    code = ("import sys, hotconf, hotconf.aio; import hotconf.integrations.asyncio, "
            "hotconf.integrations.fastapi; "
            "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'django', 'celery', "
            "'kombu', 'httpx', 'anyio') if m in sys.modules)); "
            "import importlib; print('asyncio' in sys.modules)")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "[]"
    bare = subprocess.run([sys.executable, "-c", "import sys, hotconf; print('asyncio' in "
                           "sys.modules)"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert bare.stdout.strip() == "False", bare.stderr  # `import hotconf` stays light


# -- real servers ----------------------------------------------------------------------------------


def fastapi_server(kind: str, port: int, tmp_path: Path, env: dict) -> ServerProcess:
    if kind == "uvicorn":
        argv = [str(BIN / "uvicorn"), "--workers", "2", "--host", "127.0.0.1", "--port",
                str(port), "--app-dir", str(SERVERS_DIR), "--no-access-log", "fastapi_app:app"]
    else:
        argv = [str(BIN / "gunicorn"), "-k", "uvicorn.workers.UvicornWorker", "-w", "2", "-b",
                f"127.0.0.1:{port}", "--chdir", str(SERVERS_DIR),
                *(["--preload"] if kind == "gunicorn-preload" else []), "fastapi_app:app"]
    return ServerProcess(argv, env, port, tmp_path / f"{kind}.log", signal.SIGTERM)


def publish(apollo, env, seq):
    apollo.state.publish(env["APP_ID"], "default", "application",
                         {"greeting": f"v{seq}", "seq": str(seq)})


@pytest.mark.servers
@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn", "gunicorn-preload"])
def test_fastapi_app_under_real_servers(apollo, app_env, tmp_path, kind):
    with FaultyProxy(apollo.url, delay=SLOW) as proxy:
        # The config service answers every request SLOW seconds late while the workers start.
        env = {k: v for k, v in app_env.items() if k != "APOLLO_META"}
        env["APOLLO_CONFIG_SERVICE"] = proxy.url
        server = fastapi_server(kind, free_port(), tmp_path, env)
        try:
            server.start(timeout=60)
            answers = every_worker(server.url, 2, want=lambda a: a["greeting"] == "hello")
            proxy.delay = 0
            startups = {pid: a["lag"]["marks"]["startup"] for pid, a in answers.items()}
            assert all(a["at_startup"] == "hello" for a in answers.values())
            assert all(a["hotconf"].startswith(str(ROOT)) for a in answers.values())  # this code
            assert len({a["model_id"] for a in answers.values()}) == 2  # one model per worker
            # The poller's startup waited for the slow fetch, the loop kept turning, and no
            # worker's loop was held longer than the bound by hotconf.
            assert max(s["seconds"] for s in startups.values()) >= SLOW, startups
            assert all(s["max_net"] < LAG_BOUND for s in startups.values()), startups
            assert all(s["samples"] >= s["seconds"] / 0.005 / 3 for s in startups.values())
            assert sorted(a["role"] for a in answers.values()) == ["poller", "reader"]
            assert_one_long_poll(apollo, env["APP_ID"])

            started = time.time()
            for seq in range(1, 6):  # 0.4 s apart; each listener call takes 0.6 s
                time.sleep(0.4 if seq > 1 else 0)
                published = time.time()
                publish(apollo, env, seq)
            every_worker(server.url, 2, want=lambda a: a["greeting"] == "v5" and a["seq"] == 5)
            served = time.time() - published  # every worker serves the last release
            assert served < 5, served
            answers = every_worker(server.url, 2, timeout=30, want=lambda a: (
                a["calls"] and a["calls"][-1]["seq"] == 5 and "end" in a["calls"][-1]))
            done = time.time()
            for pid, a in answers.items():
                seqs = [c["seq"] for c in a["calls"]]
                assert seqs == sorted(set(seqs)) and len(seqs) >= 2, (pid, seqs)
                assert {(c["thread"], c["loop"]) for c in a["calls"]} == {(a["thread"], a["loop"])}
                assert a["busy_max"] == 1, (pid, a["calls"])
                model = [(c["old"], c["new"]) for c in a["model_calls"]]
                assert model and model[-1][1] == 5 and all(o < n for o, n in model), model
                assert {(c["thread"], c["loop"]) for c in a["model_calls"]} == \
                    {(a["thread"], a["loop"])}
            report = {}
            for pid, a in answers.items():
                # (the probe's events carry wall-clock times: the window of the releases)
                events = [e for e in a["lag"]["events"] if started <= e[0] <= done]
                worst = max((e[2] for e in events), default=0.0)
                assert worst < LAG_BOUND, (pid, sorted(events, key=lambda e: -e[2])[:5])
                report[pid] = {"role": a["role"], "startup": startups[pid],
                               "releases_max_net": worst,
                               "releases_max_raw": max((e[1] for e in events), default=0.0),
                               "calls": [c["seq"] for c in a["calls"]]}
            assert_one_long_poll(apollo, env["APP_ID"])
            print(f"\n{kind}: every worker served the last release {served:.2f} s after it "
                  f"was published; {report}")
        finally:
            server.stop()


@pytest.mark.servers
def test_fastapi_example_under_uvicorn_workers(apollo, app_env, tmp_path):
    apollo.state.publish(app_env["APP_ID"], "default", "application", {"greeting.text": "hello"})
    port = free_port()
    argv = [str(BIN / "uvicorn"), "app:app", "--workers", "2", "--host", "127.0.0.1", "--port",
            str(port), "--no-access-log"]
    with ServerProcess(argv, app_env, port, tmp_path / "example.log", signal.SIGTERM,
                       cwd=ROOT / "examples" / "fastapi") as server:
        assert server.first_status == 200
        answers = every_worker(server.url, 2, want=lambda a: a["greeting"] == "hello!",
                               concurrency=8)
        assert sorted(a["role"] for a in answers.values()) == ["poller", "reader"]
        apollo.state.publish(app_env["APP_ID"], "default", "application",
                             {"greeting.text": "bonjour", "backend.url": "http://b2:9000"})
        answers = every_worker(server.url, 2, concurrency=8, want=lambda a: (
            a["greeting"] == "bonjour!" and a["backend"] == "http://b2:9000"))
        assert_one_long_poll(apollo, app_env["APP_ID"])
        wait_until(lambda: server.log(None).count(
            "greeting.text MODIFIED: 'hello' -> 'bonjour'") == 2, message="both listeners")


# -- what a hostile review found ----------------------------------------------------------------
def test_ready_on_a_stopped_config_says_so(devserver, cache_dir):
    """A second lifespan in one process (a TestClient per test) must not serve a stopped,
    frozen Config without a word."""
    devserver.state.publish("demo", "default", "application", {"k": "v"})
    cfg = Config(app_id="demo", server=devserver.url, cache_dir=cache_dir)
    app = FastAPI(lifespan=lifespan(cfg))
    with TestClient(app):
        pass
    with pytest.raises(ConfigUnavailableError, match="stopped"), TestClient(app):
        pass


def test_ready_keeps_its_timeout_when_the_config_service_hangs(devserver, cache_dir):
    devserver.state.publish("demo", "default", "application", {"k": "v"})
    with FaultyProxy(devserver.url, delay=4.0) as proxy:
        cfg = Config(app_id="demo", config_service=proxy.url, cache_dir=cache_dir,
                     fetch_timeout=5)
        try:
            async def main():
                started = time.monotonic()
                with pytest.raises(ConfigUnavailableError, match="within 1 s"):
                    await cfg.ready(timeout=1.0)
                return time.monotonic() - started

            assert run(main()) < 2.0
        finally:
            cfg.stop()


def test_async_listeners_survive_a_loop_that_stopped_without_closing(devserver, cache_dir):
    devserver.state.publish("demo", "default", "application", {"k": "v0"})
    cfg = Config(app_id="demo", server=devserver.url, cache_dir=cache_dir)
    seen = []

    @cfg.on_change
    async def listener(event):
        seen.append(event.changes["k"].new)

    try:
        first = asyncio.new_event_loop()
        first.run_until_complete(cfg.ready())  # the loop stops here, never closed
        devserver.state.publish("demo", "default", "application", {"k": "v1"})
        wait_until(lambda: cfg.get("k") == "v1", message="v1 delivered to the process")
        time.sleep(0.2)

        async def second_run():
            await cfg.ready()
            devserver.state.publish("demo", "default", "application", {"k": "v2"})
            deadline = time.monotonic() + 10
            while seen[-1:] != ["v2"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

        asyncio.run(second_run())
        assert seen == ["v1", "v2"]
        first.close()
    finally:
        cfg.stop()
