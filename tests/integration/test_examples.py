"""The shipped examples, run as a user runs them."""

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from hotconf.devserver import DevServer
from tests.helpers import free_port
from tests.servers_harness import BIN, ServerProcess, every_worker

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.servers


def test_make_demo_script_shows_every_worker_following():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert text.count("greeting = 'hello'") == 4 and text.count("greeting = 'bonjour'") == 16
    assert "long polls open at the dev server for app 'demo': 1  (workers: 4)" in text
    assert "store: uwsgi" in text and "uWSGI (pid" in text and "stopped" in text
    # Each worker has a connection of its own, rebuilt on db.url without a reload, kept when
    # the new db.url is rejected, and the banner (read at import) applied by a graceful reload.
    assert text.count("(its own)") == 20 and "'s) to" not in text
    assert len(set(re.findall(r"connection (\w+) \(its own\) to postgresql://db-1", text))) == 4
    assert "the same worker pids as in step 4: True (no reload)" in text
    assert text.count("resource db: failing for") == 4 and "is not a URL" in text
    assert "graceful uWSGI reload because application:banner" in text
    assert "new worker pids: True" in text and "reload because application:db.url" not in text
    assert "poller: process" in text  # hotconf status


def test_gunicorn_example_config(tmp_path):
    with DevServer(port=0, hold_seconds=30) as apollo:
        apollo.state.publish("demo", "default", "application", {"greeting": "hello"})
        port = free_port()
        env = {"APP_ID": "demo", "APOLLO_META": apollo.url,
               "APOLLO_CACHE_DIR": str(tmp_path / "c")}
        argv = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
                "app:app"]
        with ServerProcess(argv, env, port, tmp_path / "g.log", signal.SIGTERM,
                           cwd=ROOT / "examples" / "gunicorn") as server:
            assert server.first_status == 200
            apollo.state.publish("demo", "default", "application", {"greeting": "bonjour"})
            every_worker(server.url, 4, want=lambda a: a["greeting"] == "bonjour", concurrency=16)
            assert apollo.state.stats()["long_polls_open_by_app"] == {"demo": 1}


def test_django_example_under_gunicorn(tmp_path):
    pytest.importorskip("django")
    with DevServer(port=0, hold_seconds=30) as apollo:
        apollo.state.publish("demo", "default", "application",
                             {"greeting": "hello", "limits.per_page": "50"})
        port = free_port()
        env = {"APP_ID": "demo", "APOLLO_META": apollo.url,
               "APOLLO_CACHE_DIR": str(tmp_path / "c")}
        argv = [str(BIN / "gunicorn"), "-w", "2", "--preload", "-b", f"127.0.0.1:{port}",
                "shop.wsgi:application"]
        with ServerProcess(argv, env, port, tmp_path / "g.log", signal.SIGTERM,
                           cwd=ROOT / "examples" / "django") as server:
            first = every_worker(server.url, 2, want=lambda a: a["per_page"] == 50)
            assert len({a["client"] for a in first.values()}) == 2  # one client per worker
            apollo.state.publish("demo", "default", "application",
                                 {"greeting": "bonjour", "limits.per_page": "25",
                                  "cache.url": "redis://cache-2/0"})
            after = every_worker(server.url, 2, want=lambda a: a["greeting"] == "bonjour" and
                                 a["per_page"] == 25 and a["cache"] == "redis://cache-2/0")
            assert set(after) == set(first)  # rebuilt in place, no reload
            health = requests.get(server.url + "/hotconf/health", timeout=10)
            assert health.status_code == 200
