"""reload_on in a process with no server to reload: the on_reload callable."""

import threading
import time

from tests.helpers import wait_until


def test_callback_reload_once_after_a_burst_and_not_for_other_keys(devserver, make_config,
                                                                    hotconf_logs):
    devserver.state.publish("demo", "default", "application",
                            {"db.url": "pg://a", "timeout": "1"})
    calls = []
    done = threading.Event()

    def rebuild(request):
        calls.append(request)
        done.set()

    cfg = make_config(reload_on=["db.*"], on_reload=rebuild, reload_wait=(0.3, 2),
                      reload_min_interval=0.5)
    assert cfg.get("db.url") == "pg://a"
    devserver.state.publish("demo", "default", "application", {"db.url": "pg://a", "timeout": "2"})
    wait_until(lambda: cfg.get("timeout") == "2")
    time.sleep(0.6)
    assert calls == []  # only another key changed
    for i in range(20):
        devserver.state.publish("demo", "default", "application",
                                {"db.url": f"pg://u:pw{i}@b{i}", "timeout": "2"})
        time.sleep(0.04)
    assert done.wait(5)
    time.sleep(0.8)
    assert len(calls) == 1
    assert calls[0].changes == {("application", "db.url"): ("pg://a", "pg://u:pw19@b19")}
    assert cfg.get("db.url") == "pg://u:pw19@b19"
    assert "because application:db.url" in hotconf_logs.text
    assert "pw19" not in hotconf_logs.text and "pg://u:****@b19" in hotconf_logs.text


def test_reload_needed_without_any_action_says_what_to_do(devserver, make_config, hotconf_logs):
    devserver.state.publish("demo", "default", "application", {"db.url": "a"})
    cfg = make_config(reload_on=["db.url"], reload_wait=(0.1, 1))
    cfg.get("db.url")
    devserver.state.publish("demo", "default", "application", {"db.url": "b"})
    wait_until(lambda: "pass Config(on_reload=...)" in hotconf_logs.text, timeout=5)
