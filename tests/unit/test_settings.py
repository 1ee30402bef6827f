from pathlib import Path

import pytest

from hotconf.errors import SettingsError
from hotconf.options import Settings


def test_environment_fills_what_arguments_leave_out():
    env = {"APP_ID": "envapp", "APOLLO_META": "http://m1:8080, http://m2:8080/",
           "APOLLO_CLUSTER": "c1", "IDC": "dc1", "APOLLO_LABEL": "canary",
           "APOLLO_ACCESS_KEY_SECRET": "s3", "APOLLO_CACHE_DIR": "/tmp/hc"}
    s = Settings.resolve(environ=env)
    assert s.app_id == "envapp" and s.meta_servers == ("http://m1:8080", "http://m2:8080")
    assert (s.cluster, s.data_center, s.label, s.secret) == ("c1", "dc1", "canary", "s3")
    assert s.cache_dir == Path("/tmp/hc")


def test_explicit_arguments_win():
    env = {"APP_ID": "envapp", "APOLLO_META": "http://m:8080", "APOLLO_CLUSTER": "c1"}
    s = Settings.resolve(app_id="mine", config_service="http://cs:8080", cluster="c2", environ=env)
    assert s.app_id == "mine" and s.cluster == "c2"
    assert s.config_services == ("http://cs:8080",) and s.meta_servers == ()


def test_cluster_falls_back_to_idc_then_default():
    base = {"APP_ID": "a", "APOLLO_CONFIG_SERVICE": "http://cs"}
    assert Settings.resolve(environ={**base, "IDC": "sh"}).cluster == "sh"
    assert Settings.resolve(environ=base).cluster == "default"


def test_secret_is_not_in_repr():
    s = Settings.resolve(app_id="a", server="http://m", secret="topsecret", environ={})
    assert "topsecret" not in repr(s)


@pytest.mark.parametrize("kwargs,match", [
    ({}, "app_id is required"),
    ({"app_id": "a"}, "no Apollo server"),
    ({"app_id": "a", "server": "m:8080"}, "must start with http"),
    ({"app_id": "bad/app", "server": "http://m"}, "not a valid Apollo name"),
    ({"app_id": "a", "server": "http://m", "namespaces": ["x", "x"]}, "twice"),
    ({"app_id": "a", "server": "http://m", "poll_timeout": -1}, "positive"),
    ({"app_id": "a", "server": "http://m", "pol_timeout": 3}, "unknown settings"),
])
def test_bad_settings_say_what_to_do(kwargs, match):
    with pytest.raises(SettingsError, match=match):
        Settings.resolve(environ={}, **kwargs)


def test_tuning_and_namespaces_string():
    s = Settings.resolve(app_id="a", server="http://m", namespaces="application, db.yaml",
                         poll_timeout=5, environ={})
    assert s.namespaces == ("application", "db.yaml") and s.poll_timeout == 5.0
