"""The Django integration as a Django team uses it: settings.HOTCONF, the app, the middleware,
`manage.py hotconf`, the health and metrics views; a real project under uWSGI prefork and
gunicorn --preload, against the dev server."""

import concurrent.futures
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from tests.faulty_proxy import FaultyProxy
from tests.helpers import free_port
from tests.servers_harness import (
    BIN,
    CACHE2,
    SERVERS_DIR,
    UWSGI,
    ServerProcess,
    assert_one_long_poll,
    every_worker,
    release_reaches_every_worker,
)

pytestmark = pytest.mark.servers
pytest.importorskip("django")

PROJECT = SERVERS_DIR / "django_project"


def manage(env, *args):
    return subprocess.run([sys.executable, "manage.py", "hotconf", *args], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60, env={**os.environ, **env})


def publish(apollo, env, greeting, per_page):
    apollo.state.publish(env["APP_ID"], "default", "application",
                         {"greeting": greeting, "limits.per_page": per_page})


def models_follow(server, workers, want):
    """Requests that read only the bound model: every worker serves ``want``."""
    return every_worker(server.url + "/limits", workers,
                        want=lambda a: a.get("per_page") == want)


def test_django_project_under_uwsgi_prefork(apollo, app_env, tmp_path):
    publish(apollo, app_env, "hello", "20")
    port = free_port()
    argv = [UWSGI, "--master", "--processes", "4", "--http-socket", f"127.0.0.1:{port}",
            "--module", "shop.wsgi:application", "--pythonpath", str(PROJECT),
            "--virtualenv", sys.prefix, "--enable-threads", "--need-app", "--die-on-term",
            "--disable-logging", "--cache2", CACHE2]
    with ServerProcess(argv, app_env, port, tmp_path / "uwsgi.log", cwd=PROJECT) as server:
        every_worker(server.url, 4, want=lambda a: a["greeting"] == "hello")
        assert_one_long_poll(apollo, app_env["APP_ID"])
        release_reaches_every_worker(apollo, app_env, server.url, 4, "one")
        publish(apollo, app_env, "one", "50")
        models_follow(server, 4, 50)
        assert_one_long_poll(apollo, app_env["APP_ID"])

        # manage.py hotconf, beside the running server: the same configuration, every worker
        status = manage(app_env, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "poller: process" in status.stdout and status.stdout.count(" reader ") == 3
        doc = json.loads(manage(app_env, "status", "--json").stdout)
        assert doc["exit_status"] == 0 and len(doc["processes"]) == 4
        got = manage(app_env, "get", "greeting")
        assert got.returncode == 0 and got.stdout.strip() == "one"
        assert manage(app_env, "get", "no.such.key").returncode == 4
        dumped = manage(app_env, "dump")
        assert dumped.returncode == 0 and "limits.per_page" in dumped.stdout

        # the views, whichever worker answers
        health = requests.get(server.url + "/hotconf/health", timeout=10)
        assert health.status_code == 200 and len(health.json()["processes"]) == 4
        metrics = requests.get(server.url + "/hotconf/metrics", timeout=10)
        assert 'hotconf_processes{role="reader"} 3.0' in metrics.text


def test_django_project_under_gunicorn_preload(apollo, app_env, tmp_path):
    publish(apollo, app_env, "hello", "20")
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-w", "3", "-b", f"127.0.0.1:{port}", "--chdir",
            str(PROJECT), "--preload", "shop.wsgi:application"]
    server = ServerProcess(argv, app_env, port, tmp_path / "gunicorn.log", cwd=PROJECT)
    try:
        # No request has read anything yet: the first ones read only the model, and the
        # middleware's check arms each worker, so its model follows releases.
        server.start(first_request=False)
        publish(apollo, app_env, "hello", "30")
        models_follow(server, 3, 30)
        release_reaches_every_worker(apollo, app_env, server.url, 3, "two")
        assert_one_long_poll(apollo, app_env["APP_ID"])
        status = manage(app_env, "status")
        assert status.returncode == 0 and status.stdout.count(" reader ") == 2, status.stdout
    finally:
        server.stop()


def test_settings_hotconf_wins_over_the_environment_and_bad_keys_fail_at_startup(tmp_path):
    script = textwrap.dedent("""
        import os, sys, django
        from django.conf import settings
        os.environ["APP_ID"] = "from-the-environment"
        os.environ["APOLLO_META"] = "http://127.0.0.1:1"
        settings.configure(INSTALLED_APPS=["hotconf.integrations.django"],
                           HOTCONF=%r)
        try:
            django.setup()
        except Exception as exc:
            print(type(exc).__name__, exc)
            sys.exit(0)
        from hotconf.integrations.django import config
        print(config.settings.app_id, config.settings.cluster, config.role)
    """)
    run = lambda hotconf: subprocess.run(  # noqa: E731
        [sys.executable, "-c", script % (hotconf,)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "APOLLO_CACHE_DIR": str(tmp_path)})
    good = run({"app_id": "shop", "cluster": "blue"})
    assert good.stdout.split() == ["shop", "blue", "idle"], good.stderr  # nothing started
    bad = run({"app_id": "shop", "namspaces": ["application"]})
    assert bad.stdout.startswith("ImproperlyConfigured settings.HOTCONF:") and \
        "namspaces" in bad.stdout, bad.stdout + bad.stderr


def test_django_project_under_uvicorn_asgi(apollo, app_env, tmp_path):
    """The middleware in its async form: the first requests of each worker (async views that
    read config, with the config service 0.6 s away) arm it and wait for its first load off
    the event loop; a worker whose requests read only a model follows releases too."""
    publish(apollo, app_env, "hello", "20")
    port = free_port()
    argv = [str(BIN / "uvicorn"), "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
            "--app-dir", str(PROJECT), "shop.asgi:application"]
    with FaultyProxy(apollo.url, delay=0.7) as proxy:  # a first load takes 1.4 s and more
        env = {**app_env, "APOLLO_META": proxy.url}
        server = ServerProcess(argv, env, port, tmp_path / "uvicorn.log", cwd=PROJECT)
        try:
            server.start(first_request=False)
            with concurrent.futures.ThreadPoolExecutor(24) as pool:
                # Waves of first requests, so both workers get some before the first load is
                # done (the accept race may hand a whole wave to one worker)
                waves = []
                for _ in range(3):
                    waves.append(pool.map(lambda _: requests.get(
                        server.url + "/async/", timeout=30, headers={"Connection": "close"}),
                        range(8)))
                    time.sleep(0.2)
                answers = [a for wave in waves for a in wave]
            assert all(a.status_code == 200 and a.json()["greeting"] == "hello"
                       for a in answers), [(a.status_code, a.text[:200]) for a in answers]
            assert len({a.json()["pid"] for a in answers}) == 2, "both workers' first requests"
            proxy.delay = 0.0
            lags = {}
            for _ in range(40):
                lag = requests.get(server.url + "/lag", timeout=10,
                                   headers={"Connection": "close"}).json()
                lags[lag["pid"]] = lag["max_net"]
                if len(lags) == 2:
                    break
            assert len(lags) == 2 and max(lags.values()) < 0.05, lags  # ms, not the fetch
        finally:
            server.stop()
    server = ServerProcess(argv, app_env, port, tmp_path / "uvicorn2.log", cwd=PROJECT)
    try:
        server.start(first_request=False)
        models_follow(server, 2, 20)
        publish(apollo, app_env, "hello", "40")
        models_follow(server, 2, 40)
        assert_one_long_poll(apollo, app_env["APP_ID"])
    finally:
        server.stop()


def test_manage_py_hotconf_reads_the_apps_own_config(apollo, app_env, tmp_path):
    """The command takes the app's resolved Config: every namespace (the offline cache is
    found by the whole list), HOTCONF's stale bound; Django's options after the subcommand
    are Django's."""
    from hotconf import Config

    app = app_env["APP_ID"]
    apollo.state.publish(app, "default", "application", {"greeting": "hello"})
    apollo.state.publish(app, "default", "extra", {"feature": "on"})
    env = {**app_env, "NAMESPACES": "application,extra", "STALE_AFTER": "3"}
    with Config(app_id=app, server=apollo.url, cache_dir=app_env["APOLLO_CACHE_DIR"],
                namespaces=["application", "extra"]) as cfg:
        assert cfg.get("feature", namespace="extra") == "on"  # the app's cache is written
    got = manage({**env, "APOLLO_META": "http://127.0.0.1:1"}, "get", "feature", "-n",
                 "extra", "--offline", "--settings=shop.settings")
    assert got.returncode == 0 and got.stdout.strip() == "on", got.stdout + got.stderr
    doc = json.loads(manage(env, "status", "--json").stdout)
    assert doc["stale_after"] == 3.0 and doc["namespaces"] == ["application", "extra"]


def test_the_health_view_stays_up_while_apollo_is_down(app_env, tmp_path):
    """A config service that is down makes every instance's poller fail at once: the health
    view says "degraded" with 200 (the fleet keeps serving its last good config), while
    `manage.py hotconf status` exits 5 for the operator."""
    from hotconf.devserver import DevServer

    apollo = DevServer(port=0, hold_seconds=30).start()
    publish(apollo, app_env, "hello", "20")
    env = {**app_env, "APOLLO_META": apollo.url, "STALE_AFTER": "1"}
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "--chdir",
            str(PROJECT), "shop.wsgi:application"]
    server = ServerProcess(argv, env, port, tmp_path / "gunicorn.log", cwd=PROJECT)
    try:
        server.start()
        every_worker(server.url, 2)
        assert requests.get(server.url + "/hotconf/health", timeout=10).status_code == 200
        apollo.stop()
        time.sleep(3.5)  # failing past the 1 s bound
        health = requests.get(server.url + "/hotconf/health", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["degraded"] is True and health.json()["healthy"] is True
        assert manage(env, "status").returncode == 5
    finally:
        server.stop()
        apollo.stop()


def test_config_used_inside_settings_py_and_a_dotted_on_reload(tmp_path):
    (tmp_path / "early_settings.py").write_text(textwrap.dedent("""
        from hotconf.integrations.django import config
        GREETING = config.get("greeting")
        HOTCONF = {"app_id": "shop", "server": "http://127.0.0.1:1"}
    """))
    (tmp_path / "hooked_settings.py").write_text(textwrap.dedent("""
        INSTALLED_APPS = ["hotconf.integrations.django"]
        HOTCONF = {"app_id": "shop", "server": "http://127.0.0.1:1", "reload": "callback",
                   "on_reload": "hooks.on_reload", "reload_on": ["db.*"]}
    """))
    (tmp_path / "hooks.py").write_text("def on_reload(request):\n    pass\n")
    script = ("import django; django.setup(); from hotconf.integrations.django import config; "
              "print(config.options.on_reload.__module__)")
    run = lambda module: subprocess.run(  # noqa: E731
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        cwd=tmp_path, env={**os.environ, "DJANGO_SETTINGS_MODULE": module,
                           "PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}",
                           "APOLLO_CACHE_DIR": str(tmp_path / "c")})
    early = run("early_settings")
    assert "ImproperlyConfigured" in early.stderr and "while it is being" in early.stderr
    hooked = run("hooked_settings")
    assert hooked.stdout.strip() == "hooks", hooked.stderr
