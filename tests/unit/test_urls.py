import json
from urllib.parse import parse_qs, unquote, urlsplit

from hotconf.apollo import urls


def _query(path):
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}


def test_configs_path_encodes_every_parameter():
    path = urls.configs_path("app", "default", "db.yaml", release_key="20240101-abc", ip="10.0.0.1",
                             label="canary", data_center="dc1",
                             messages={"app+default+db.yaml": 7})
    assert path.startswith("/configs/app/default/db.yaml?")
    q = _query(path)
    assert q == {"releaseKey": "20240101-abc", "ip": "10.0.0.1", "label": "canary",
                 "dataCenter": "dc1", "messages": '{"details":{"app+default+db.yaml":7}}'}
    # nothing in the query is left for an HTTP library to re-encode
    assert "{" not in path and '"' not in path and "+" not in urlsplit(path).query


def test_configs_path_omits_absent_parameters():
    assert urls.configs_path("a", "c", "n") == "/configs/a/c/n"


def test_notifications_path_carries_all_namespaces_in_one_request():
    path = urls.notifications_path("app", "default", [("application", -1), ("db.yaml", 42)],
                                   data_center="dc")
    q = _query(path)
    assert q["appId"] == "app" and q["cluster"] == "default" and q["dataCenter"] == "dc"
    assert json.loads(q["notifications"]) == [
        {"namespaceName": "application", "notificationId": -1},
        {"namespaceName": "db.yaml", "notificationId": 42},
    ]
    assert " " not in unquote(path)  # compact JSON, as Gson writes it


def test_join_keeps_context_path():
    assert urls.join("http://h:8080/apollo/", "/configs/a/b/c") == "http://h:8080/apollo/configs/a/b/c"
    assert urls.join("http://h:8080", "/services/config") == "http://h:8080/services/config"


def test_services_path():
    assert urls.services_path("a b") == "/services/config?appId=a%20b"
