"""`hotconf serve` and `hotconf publish` as real processes, as a user runs them."""

import json
import subprocess
import time

import requests

from hotconf import Config
from tests.helpers import HOTCONF, ServeProcess, free_port, wait_until


def run(*args, env=None):
    return subprocess.run(HOTCONF + list(args), capture_output=True, text=True, timeout=30,
                          env=env)


def test_publish_command_and_client(cache_dir, tmp_path):
    with ServeProcess() as srv:
        out = run("publish", "--server", srv.url, "--app", "demo", "application", "timeout=30",
                  "name=hello world")
        assert out.returncode == 0, out.stderr
        assert "published demo/default/application: release" in out.stdout
        yaml_file = tmp_path / "db.yaml"
        yaml_file.write_text("db:\n  url: pg://a\n")
        out = run("publish", "--server", srv.url, "--app", "demo", "db.yaml", "--file",
                  str(yaml_file), "--json")
        assert out.returncode == 0 and json.loads(out.stdout)["namespaceName"] == "db.yaml"
        with Config(app_id="demo", server=srv.url, namespaces=["application", "db.yaml"],
                    cache_dir=cache_dir) as cfg:
            assert cfg.get("name") == "hello world"
            assert cfg.get("db.url", namespace="db.yaml") == "pg://a"
            out = run("publish", "--server", srv.url, "--app", "demo", "application",
                      "timeout=60")
            assert out.returncode == 0
            wait_until(lambda: cfg.get("timeout") == "60", message="the CLI publish")
        out = run("publish", "--server", srv.url, "--app", "demo", "application",
                  "--gray-label", "canary", "color=green")
        assert out.returncode == 0 and "gray release" in out.stdout


def test_publish_errors_are_clear():
    out = run("publish", "--server", f"http://127.0.0.1:{free_port()}", "--app", "demo",
              "application", "k=v")
    assert out.returncode == 3 and "cannot reach" in out.stderr
    out = run("publish", "--server", "http://127.0.0.1:1", "--app", "demo", "application", "novalue")
    assert out.returncode == 2 and "KEY=VALUE" in out.stderr
    with ServeProcess() as srv:
        out = run("publish", "--server", srv.url, "--app", "demo", "db.yaml", "k=v")
        assert out.returncode == 2 and "--file or --content" in out.stderr


def test_serve_access_key_option(cache_dir):
    with ServeProcess(extra=("--access-key", "demo=s3cret")) as srv:
        run("publish", "--server", srv.url, "--app", "demo", "application", "k=v")
        assert requests.get(srv.url + "/configs/demo/default/application",
                            timeout=5).status_code == 401
        with Config(app_id="demo", server=srv.url, secret="s3cret", cache_dir=cache_dir) as cfg:
            assert cfg.get("k") == "v"


def test_server_restarted_mid_poll(cache_dir):
    """Killed while holding our long poll, restarted empty on the same port: the client
    reconnects, keeps serving the last good config meanwhile, and sees the next release."""
    port = free_port()
    srv = ServeProcess(port=port, hold=30).start()
    try:
        run("publish", "--server", srv.url, "--app", "demo", "application", "k=before")
        cfg = Config(app_id="demo", server=srv.url, cache_dir=cache_dir, backoff_max=1)
        try:
            assert cfg.get("k") == "before"
            wait_until(lambda: requests.get(srv.url + "/admin/stats", timeout=5).json()
                       ["long_polls_open"] == 1, message="the long poll to be held")
            srv.stop(9)  # SIGKILL mid-poll
            assert cfg.get("k") == "before"
            time.sleep(1.5)
            srv = ServeProcess(port=port, hold=30).start()
            run("publish", "--server", srv.url, "--app", "demo", "application", "k=after")
            wait_until(lambda: cfg.get("k") == "after", timeout=15,
                       message="the release on the restarted server")
        finally:
            cfg.stop()
    finally:
        srv.stop()


def test_fresh_server_with_lower_ids_is_not_waited_on(cache_dir):
    """The restarted server's ids restart below the client's: the client must not wait for
    ids it will never see."""
    from hotconf.devserver import DevServer, DevState

    port = free_port()
    with DevServer(port=port, state=DevState(hold_seconds=1, first_id=1000)) as srv:
        for i in range(5):
            srv.state.publish("demo", "default", "application", {"k": f"v{i}"})
        cfg = Config(app_id="demo", server=srv.url, cache_dir=cache_dir, backoff_max=1)
        cfg.get("k")
    try:
        with DevServer(port=port, state=DevState(hold_seconds=1, first_id=1)) as srv:
            srv.state.publish("demo", "default", "application", {"k": "fresh"})
            wait_until(lambda: cfg.get("k") == "fresh", timeout=15, message="the fresh server")
    finally:
        cfg.stop()


def test_directory_mode_publishes_files_and_edits(tmp_path, cache_dir):
    data = tmp_path / "data"
    (data / "demo" / "default").mkdir(parents=True)
    (data / "demo" / "default" / "application.properties").write_text("greeting=hello\n")
    (data / "demo" / "default" / "db.yaml").write_text("url: pg://a\n")
    (data / "demo" / "default" / ".swap.tmp").write_text("ignored")
    with ServeProcess(extra=("--data", str(data))) as srv:
        with Config(app_id="demo", server=srv.url, namespaces=["application", "db.yaml"],
                    cache_dir=cache_dir) as cfg:
            assert cfg.get("greeting") == "hello"
            assert cfg.get("url", namespace="db.yaml") == "pg://a"
            (data / "demo" / "default" / "application.properties").write_text("greeting=hi\n")
            wait_until(lambda: cfg.get("greeting") == "hi", message="the edit to publish")
            (data / "demo" / "default" / "db.yaml").unlink()
            wait_until(lambda: not cfg.namespace("db.yaml").found, message="the delete")
        stats = requests.get(srv.url + "/admin/stats", timeout=5).json()
        assert stats["namespaces"] == ["demo/default/application"]


def test_serve_and_publish_help_read_well():
    out = run("--help")
    assert out.returncode == 0 and "serve" in out.stdout and "publish" in out.stdout
    out = run("serve", "--help")
    assert "127.0.0.1" in out.stdout and "--data" in out.stdout
