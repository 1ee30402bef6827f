import logging
import os
import shutil
import tempfile

import pytest

from hotconf import Config
from hotconf.devserver import DevServer

APOLLO_ENV = ("APP_ID", "APOLLO_META", "APOLLO_CONFIG_SERVICE", "APOLLO_CLUSTER", "IDC",
              "APOLLO_LABEL", "APOLLO_ACCESS_KEY_SECRET", "APOLLO_CACHE_DIR")


@pytest.fixture(scope="session")
def _shm_base():
    """The file store's front copies (see hotconf/stores/front.py) go under /dev/shm, as they
    do for users, but in a directory of this run's, removed at its end."""
    base = tempfile.mkdtemp(prefix="hotconf-tests-",
                            dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path, _shm_base):
    for name in APOLLO_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOTCONF_SHM_DIR", _shm_base)


@pytest.fixture
def devserver():
    srv = DevServer(port=0, hold_seconds=1.0).start()
    yield srv
    srv.stop()


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


@pytest.fixture
def make_config(devserver, cache_dir):
    made = []

    def make(**kwargs):
        kwargs.setdefault("app_id", "demo")
        if "config_service" not in kwargs:
            kwargs.setdefault("server", devserver.url)
        kwargs.setdefault("cache_dir", cache_dir)
        cfg = Config(**kwargs)
        made.append(cfg)
        return cfg

    yield make
    for cfg in made:
        cfg.stop()


@pytest.fixture
def hotconf_logs(caplog):
    caplog.set_level(logging.INFO, logger="hotconf")
    return caplog
