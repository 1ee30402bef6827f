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


OLD_UWSGI_VERSION = "2.0.26"  # the last release that runs no Python thread by default


@pytest.fixture(scope="session")
def old_uwsgi():
    """pip's uWSGI 2.0.26, built once into a cache outside the checkout (about 20 s of gcc)
    and reused by later runs; skipped with the reason if it cannot be built here."""
    import subprocess
    import sys
    from pathlib import Path

    python = f"py{sys.version_info[0]}{sys.version_info[1]}"
    home = Path.home() / ".cache" / "hotconf-tests" / f"uwsgi-{OLD_UWSGI_VERSION}-{python}"
    binary = home / "bin" / "uwsgi"
    if not binary.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(home)], check=True,
                           capture_output=True, timeout=120)
            subprocess.run([str(home / "bin" / "pip"), "install", "--quiet",
                            f"uwsgi=={OLD_UWSGI_VERSION}"], check=True, capture_output=True,
                           timeout=900)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"could not build uWSGI {OLD_UWSGI_VERSION} here: {exc}")
    return str(binary)
