"""The dev server answers as Apollo's config service does (raw HTTP, no hotconf client)."""

import json
import socket
import threading
import time
from urllib.parse import quote

import pytest
import requests

from hotconf.apollo import signing
from hotconf.devserver import DevServer


def notifications(srv, app, entries, cluster="default", **extra):
    params = {"appId": app, "cluster": cluster,
              "notifications": json.dumps([{"namespaceName": n, "notificationId": i}
                                           for n, i in entries]), **extra}
    return requests.get(srv.url + "/notifications/v2", params=params, timeout=10)


def test_meta_endpoint_lists_itself(devserver):
    body = requests.get(devserver.url + "/services/config?appId=x", timeout=5).json()
    assert body == [{"appName": "APOLLO-CONFIGSERVICE", "instanceId": devserver.url + "/",
                     "homepageUrl": devserver.url + "/"}]


def test_configs_200_then_304_on_same_release_key(devserver):
    key, _ = devserver.state.publish("app", "default", "application", {"k": "v"})
    r = requests.get(devserver.url + "/configs/app/default/application", timeout=5)
    assert r.status_code == 200
    assert r.json() == {"appId": "app", "cluster": "default", "namespaceName": "application",
                        "configurations": {"k": "v"}, "releaseKey": key}
    r = requests.get(devserver.url + f"/configs/app/default/application?releaseKey={key}",
                     timeout=5)
    assert r.status_code == 304 and r.content == b""


def test_unknown_namespace_is_404_with_spring_error_body(devserver):
    r = requests.get(devserver.url + "/configs/app/default/nothing", timeout=5)
    assert r.status_code == 404 and r.json()["status"] == 404


def test_properties_suffix_and_case_are_normalised_but_spelling_echoed(devserver):
    devserver.state.publish("app", "default", "Shared", {"k": "v"})
    r = requests.get(devserver.url + "/configs/app/default/shared.properties", timeout=5)
    assert r.status_code == 200 and r.json()["namespaceName"] == "shared.properties"
    assert r.json()["configurations"] == {"k": "v"}


def test_non_properties_namespaces_carry_content(devserver):
    devserver.state.publish("app", "default", "db.yaml", {"content": "a: 1\n"})
    r = requests.get(devserver.url + "/configs/app/default/db.yaml", timeout=5)
    assert r.json()["configurations"] == {"content": "a: 1\n"}
    r = requests.get(devserver.url + "/configfiles/json/app/default/db.yaml", timeout=5)
    assert r.json() == {"content": "a: 1\n"}


def test_configfiles_json_is_the_flat_map(devserver):
    devserver.state.publish("app", "default", "application", {"a": "1", "b": "2"})
    r = requests.get(devserver.url + "/configfiles/json/app/default/application", timeout=5)
    assert r.json() == {"a": "1", "b": "2"}


def test_cluster_then_data_center_then_default(devserver):
    devserver.state.publish("app", "default", "application", {"from": "default"})
    url = devserver.url + "/configs/app/c1/application"
    assert requests.get(url, timeout=5).json()["cluster"] == "default"
    devserver.state.publish("app", "dc1", "application", {"from": "dc1"})
    r = requests.get(url + "?dataCenter=dc1", timeout=5).json()
    assert (r["cluster"], r["configurations"]) == ("dc1", {"from": "dc1"})
    devserver.state.publish("app", "c1", "application", {"from": "c1"})
    assert requests.get(url + "?dataCenter=dc1", timeout=5).json()["cluster"] == "c1"


def test_gray_release_by_label_and_by_ip(devserver):
    devserver.state.publish("app", "default", "application", {"v": "main"})
    devserver.state.publish_gray("app", "default", "application", {"v": "gray"},
                                 labels=["canary"], ips=["10.1.1.1"])
    url = devserver.url + "/configs/app/default/application"
    assert requests.get(url, timeout=5).json()["configurations"] == {"v": "main"}
    assert requests.get(url + "?label=canary", timeout=5).json()["configurations"] == {"v": "gray"}
    assert requests.get(url + "?ip=10.1.1.1", timeout=5).json()["configurations"] == {"v": "gray"}
    forwarded = requests.get(url, headers={"X-Forwarded-For": "10.1.1.1, 1.2.3.4"}, timeout=5)
    assert forwarded.json()["configurations"] == {"v": "gray"}
    assert devserver.state.drop_gray("app", "default", "application")
    assert requests.get(url + "?label=canary", timeout=5).json()["configurations"] == {"v": "main"}


def test_long_poll_answers_at_once_when_newer_and_echoes_spelling(devserver):
    _, nid = devserver.state.publish("app", "default", "application", {"k": "v"})
    r = notifications(devserver, "app", [("application.properties", -1), ("other", -1)])
    assert r.status_code == 200
    assert r.json() == [{"namespaceName": "application", "notificationId": nid,
                         "messages": {"details": {"app+default+application": nid}}}]


def test_long_poll_holds_then_304(devserver):
    _, nid = devserver.state.publish("app", "default", "application", {"k": "v"})
    start = time.monotonic()
    r = notifications(devserver, "app", [("application", nid)])
    assert r.status_code == 304 and 0.9 <= time.monotonic() - start < 5


def test_long_poll_wakes_on_publish_and_ids_are_global(devserver):
    _, first = devserver.state.publish("app", "default", "application", {"k": "v"})
    devserver.state.hold_seconds = 10
    result = {}
    t = threading.Thread(target=lambda: result.update(r=notifications(
        devserver, "app", [("application", first)])))
    t.start()
    deadline = time.monotonic() + 5  # publish only once the poll is held: the wake-up path
    while devserver.state.stats()["long_polls_open"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert devserver.state.stats()["long_polls_open"] == 1
    _, other_app = devserver.state.publish("other", "default", "application", {"x": "1"})
    _, mine = devserver.state.publish("app", "default", "application", {"k": "w"})
    t.join(5)
    assert result["r"].status_code == 200
    assert result["r"].json()[0]["notificationId"] == mine == other_app + 1 > first


def test_bad_notifications_parameter_is_400(devserver):
    r = requests.get(devserver.url + "/notifications/v2?appId=app&cluster=default&notifications="
                     + quote("not json"), timeout=5)
    assert r.status_code == 400 and "invalid notifications format" in r.json()["message"]


def test_counters_show_open_long_polls_and_requests(devserver):
    devserver.state.hold_seconds = 3
    t = threading.Thread(target=notifications, args=(devserver, "app", [("application", -1)]))
    t.start()
    try:
        stats = None
        for _ in range(100):
            stats = requests.get(devserver.url + "/admin/stats", timeout=5).json()
            if stats["long_polls_open"] == 1:
                break
            time.sleep(0.02)
        assert stats["long_polls_open_by_app"] == {"app": 1}
        assert stats["requests_by_app"]["app"]["notifications"] == 1
    finally:
        t.join(10)
    assert requests.get(devserver.url + "/admin/stats", timeout=5).json()["long_polls_open"] == 0


class TestAccessKeys:
    @pytest.fixture
    def srv(self, devserver):
        devserver.state.publish("app", "default", "application", {"k": "v"})
        devserver.state.set_secret("app", "s3cret")
        return devserver

    def get(self, srv, path, secret="s3cret", ts=None):
        headers = signing.auth_headers("app", secret, path, ts) if secret else {}
        return requests.get(srv.url + path, headers=headers, timeout=5)

    def test_signed_request_passes(self, srv):
        assert self.get(srv, "/configs/app/default/application?ip=1.2.3.4").status_code == 200

    def test_wrong_secret_and_missing_signature_are_401_unauthorized(self, srv):
        for r in (self.get(srv, "/configs/app/default/application", secret="wrong"),
                  self.get(srv, "/configs/app/default/application", secret=None)):
            assert r.status_code == 401
        assert self.get(srv, "/configs/app/default/application", "wrong").json()["message"] == \
            "Unauthorized"

    def test_skewed_clock_is_401_too_skewed(self, srv):
        old = int(time.time() * 1000) - 61_000
        r = self.get(srv, "/configs/app/default/application", ts=old)
        assert r.status_code == 401 and r.json()["message"] == "RequestTimeTooSkewed"

    def test_signature_covers_the_query(self, srv):
        headers = signing.auth_headers("app", "s3cret", "/configs/app/default/application")
        r = requests.get(srv.url + "/configs/app/default/application?ip=1", headers=headers,
                         timeout=5)
        assert r.status_code == 401

    def test_invalid_app_id_is_400(self, srv):
        r = requests.get(srv.url + "/notifications/v2?appId=&cluster=default&notifications=[]",
                         timeout=5)
        assert r.status_code == 400 and r.json()["message"] == "InvalidAppId"

    def test_meta_endpoint_is_not_protected(self, srv):
        assert requests.get(srv.url + "/services/config", timeout=5).status_code == 200


def test_admin_rejects_bad_releases(devserver):
    base = devserver.url + "/admin/apps/app/clusters/default/namespaces"
    assert requests.post(base + "/application/releases", json={"configurations": {"a": 1}},
                         timeout=5).status_code == 400
    assert requests.post(base + "/db.yaml/releases", json={"configurations": {"a": "1"}},
                         timeout=5).status_code == 400
    assert requests.post(base + "/bad%20name/releases", json={"configurations": {}},
                         timeout=5).status_code == 400
    host, port = devserver.address
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"POST /admin/apps/app/clusters/default/namespaces/application/releases "
                     b"HTTP/1.1\r\nHost: x\r\nContent-Length: 67108864\r\n\r\n{")
        assert sock.recv(100).startswith(b"HTTP/1.1 413")


def test_dev_server_binds_loopback_by_default():
    srv = DevServer(port=0)
    try:
        assert srv.address[0] == "127.0.0.1"
    finally:
        srv._httpd.server_close()


def test_many_concurrent_long_polls_all_answered_on_publish(devserver):
    _, first = devserver.state.publish("app", "default", "application", {"k": "v"})
    devserver.state.hold_seconds = 20
    results = []
    lock = threading.Lock()

    def poll():
        r = notifications(devserver, "app", [("application", first)])
        with lock:
            results.append(r.status_code)

    threads = [threading.Thread(target=poll) for _ in range(60)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while devserver.state.stats()["long_polls_open"] < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert devserver.state.stats()["long_polls_open"] == 60
    start = time.monotonic()
    devserver.state.publish("app", "default", "application", {"k": "w"})
    for t in threads:
        t.join(10)
    assert results == [200] * 60 and time.monotonic() - start < 5


def test_two_spellings_of_one_namespace_answer_in_the_spelling_with_the_smaller_id(devserver):
    """As Apollo's NotificationControllerV2: the entry with the smaller id wins, spelling and
    all (clients watching `Application` would otherwise never hear of it, or busy-loop)."""
    _, nid = devserver.state.publish("app", "default", "application", {"k": "v"})
    r = notifications(devserver, "app", [("application", nid), ("Application", -1)])
    assert r.status_code == 200
    assert r.json() == [{"namespaceName": "Application", "notificationId": nid,
                         "messages": {"details": {"app+default+application": nid}}}]
    r = notifications(devserver, "app", [("Application", -1), ("application", nid)])
    assert [e["namespaceName"] for e in r.json()] == ["Application"]


def test_a_release_wakes_a_held_poll_with_its_one_namespace_and_key(devserver):
    """The push path answers, as Apollo does, a one-element list: the namespace whose release
    woke the poll, with `messages` for that one watch key."""
    _, a = devserver.state.publish("app", "sh", "application", {"k": "v"})
    _, b = devserver.state.publish("app", "default", "other", {"k": "v"})
    devserver.state.hold_seconds = 10
    result = {}
    t = threading.Thread(target=lambda: result.update(r=notifications(
        devserver, "app", [("application", a), ("other", b)], cluster="sh")))
    t.start()
    deadline = time.monotonic() + 5
    while devserver.state.stats()["long_polls_open"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    _, woke = devserver.state.publish("app", "default", "application", {"k": "w"})
    t.join(5)
    assert result["r"].json() == [{"namespaceName": "application", "notificationId": woke,
                                   "messages": {"details": {"app+default+application": woke}}}]
