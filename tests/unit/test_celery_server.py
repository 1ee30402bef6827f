"""hotconf.servers.celery without a worker: what a process is taken for, which reload it gets,
that a pool child's arming never holds up Celery's start, and that the core imports no Celery.
(Real workers: tests/integration/test_celery.py.)"""

import logging
import os
import subprocess
import sys
import time

import pytest

from hotconf.process import platform
from hotconf.runtime import ProcessFacts
from hotconf.servers import celery as server

celery = pytest.importorskip("celery")


def test_importing_hotconf_and_its_celery_integration_imports_no_celery():
    code = ("import sys, hotconf, hotconf.integrations.celery; "
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('celery', 'kombu', 'billiard', 'click', 'django', 'fastapi', 'starlette', "
            "'uvicorn')); assert not loaded, loaded")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ})
    assert out.returncode == 0, out.stderr


@pytest.fixture
def fresh(monkeypatch):
    """Nothing known of any worker, in this process."""
    monkeypatch.setattr(server, "_workers", {})
    monkeypatch.setattr(server, "_children", {})
    monkeypatch.setattr(server, "_apps", [])
    return server


def test_a_process_that_only_imports_celery_is_a_plain_process(fresh):
    assert "celery" in sys.modules
    assert server.CeleryServer().detect() is None
    assert platform.current()[0].name == "plain"


def test_the_celery_worker_command_is_a_main_process_that_forks_until_the_pool_says(fresh):
    import click
    from celery.bin.celery import celery as group

    ctx = click.Context(group, info_name="celery")
    ctx.invoked_subcommand = "worker"
    with ctx:
        assert server._under_worker_command()
        facts = server.CeleryServer().detect()
    assert facts == ProcessFacts(server="celery", celery_main=True)
    # once worker_init names a pool that runs the tasks here, this process is no master
    server._workers[os.getpid()].pool = "solo"
    assert server.CeleryServer().detect() == ProcessFacts(server="celery")
    # another command (beat, call, inspect) is a plain process
    server._workers.clear()
    ctx = click.Context(group, info_name="celery")
    ctx.invoked_subcommand = "beat"
    with ctx:
        assert not server._under_worker_command()
        assert server.CeleryServer().detect() is None


@pytest.mark.parametrize("pool,name", [("prefork", "prefork"), ("processes", "prefork"),
                                       ("solo", "solo"), ("threads", "threads")])
def test_pool_names(pool, name):
    assert server._pool_name(pool) == name
    from celery import concurrency

    assert server._pool_name(concurrency.get_implementation(pool)) == name


class FakeControl:
    def __init__(self):
        self.sent = []

    def pool_restart(self, **kwargs):
        self.sent.append(kwargs)


class FakeApp:
    def __init__(self, restarts, remote=True):
        self.conf = type("Conf", (), {"worker_pool_restarts": restarts,
                                      "worker_enable_remote_control": remote})()
        self.control = FakeControl()


def test_a_pool_child_restarts_its_own_workers_pool_where_enabled(fresh):
    app = FakeApp(restarts=True)
    server._workers[os.getppid()] = server._Worker("prefork", "w1@host", app)
    reloader = server.CeleryServer().server_reloader(ProcessFacts(server="celery", worker=1))
    assert isinstance(reloader, server.CeleryPoolRestart)
    assert reloader.server_level and "w1@host" in reloader.description
    reloader(None)
    assert app.control.sent == [{"destination": ["w1@host"], "reply": False}]


@pytest.mark.parametrize("case", ["no_restarts", "no_remote_control", "solo", "no_app"])
def test_where_the_pool_cannot_restart_the_log_says_a_worker_restart_is_needed(fresh, case):
    if case == "solo":
        server._workers[os.getpid()] = server._Worker("solo", "w1@host", FakeApp(True))
    elif case != "no_app":
        app = FakeApp(restarts=case != "no_restarts", remote=case != "no_remote_control")
        server._workers[os.getppid()] = server._Worker("prefork", "w1@host", app)
    reloader = server.CeleryServer().server_reloader(ProcessFacts(server="celery", worker=1))
    assert isinstance(reloader, server.CeleryRestartNeeded)
    assert reloader.server_level  # said once, by the poller's process
    assert "restart the Celery worker to apply it" in reloader.description
    expected = {"no_restarts": "worker_pool_restarts = True", "solo": "solo pool",
                "no_remote_control": "remote control is off", "no_app": "init_app"}[case]
    assert expected in reloader.description
    reloader(None)  # does nothing but be logged by the controller


def test_reload_celery_outside_a_worker_is_refused():
    from hotconf.errors import ReloadError
    from hotconf.options import resolve_options

    options = resolve_options(app_id="a", config_service="http://127.0.0.1:9", reload="celery",
                              environ={})
    with pytest.raises(ReloadError, match="celery"):
        platform.current()[0].reloader(options, ProcessFacts())


def test_a_pool_child_says_it_is_up_in_time_even_when_arming_is_slow(fresh, monkeypatch, caplog):
    """Celery kills a child that is not up within worker_proc_alive_timeout (4 s): arming
    that takes longer (a config service that does not answer) goes on in the background."""
    armed = []
    monkeypatch.setattr(server, "arm_all", lambda: (time.sleep(3.0), armed.append(1)))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="hotconf"):
        server._on_process_init(sender="w1@host")
    took = time.monotonic() - started
    assert server.ARM_WAIT - 0.1 <= took < server.ARM_WAIT + 0.5, took
    assert "goes on in the background" in caplog.text and not armed
    assert server._children[os.getpid()].hostname == "w1@host"
    deadline = time.monotonic() + 5
    while not armed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert armed == [1]


def test_init_app_checks_freshness_before_each_task_once_per_config(fresh):
    """task_prerun runs the Config's check (a version read) before each task; a second
    init_app with the same Config connects nothing more."""
    from celery import signals

    from hotconf.integrations.celery import config_of, init_app

    class Counting:
        def __init__(self):
            self.checks = 0

        def check(self):
            self.checks += 1

    counting = Counting()
    app = celery.Celery("t", broker="memory://")
    server.attach(app, counting.check)
    server.attach(app, counting.check)
    signals.task_prerun.send(sender=None, task_id="1", task=None)
    assert counting.checks == 1
    with pytest.raises(TypeError, match="hotconf Config"):
        init_app(app, counting)
    with pytest.raises(RuntimeError, match="init_app"):
        config_of(app)
    signals.task_prerun.disconnect(dispatch_uid=f"hotconf.task_prerun.{id(counting)}")
