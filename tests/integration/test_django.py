"""The Django integration as a Django team uses it: settings.HOTCONF, the app, the middleware,
`manage.py hotconf`, the health and metrics views; a real project under uWSGI prefork and
gunicorn --preload, against the dev server."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import requests

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
    """The middleware in its async form: a worker whose requests read only a model is armed
    off the event loop, and its model follows releases."""
    publish(apollo, app_env, "hello", "20")
    port = free_port()
    argv = [str(BIN / "uvicorn"), "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
            "--app-dir", str(PROJECT), "shop.asgi:application"]
    server = ServerProcess(argv, app_env, port, tmp_path / "uvicorn.log", cwd=PROJECT)
    try:
        server.start(first_request=False)
        models_follow(server, 2, 20)
        publish(apollo, app_env, "hello", "40")
        models_follow(server, 2, 40)
        assert_one_long_poll(apollo, app_env["APP_ID"])
    finally:
        server.stop()
