import pytest

from hotconf.devserver import DevServer


@pytest.fixture
def apollo():
    """The dev server for tests that run real servers: a long hold, so a held poll is visible."""
    with DevServer(port=0, hold_seconds=30) as srv:
        yield srv


@pytest.fixture
def app_env(request, apollo, tmp_path):
    """An app id of its own per test, published, and the environment the test apps read."""
    app_id = "t" + str(abs(hash(request.node.name)) % 10**8)
    apollo.state.publish(app_id, "default", "application", {"greeting": "hello"})
    return {"APP_ID": app_id, "APOLLO_META": apollo.url, "APOLLO_CACHE_DIR": str(tmp_path / "c"),
            "PYTHONUNBUFFERED": "1"}
