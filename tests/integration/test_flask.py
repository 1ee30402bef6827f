"""Flask integration in one process (the server matrix runs it under uWSGI and gunicorn)."""

import pytest
from flask import Flask

from hotconf.integrations.flask import HotConf, current_config


def test_extension_registers_and_checks_freshness_per_request(devserver, make_config):
    devserver.state.publish("demo", "default", "application", {"greeting": "hi"})
    cfg = make_config()
    app = Flask(__name__)
    HotConf(app, cfg)
    assert app.extensions["hotconf"] is cfg

    @app.get("/")
    def index():
        return current_config().get("greeting")

    assert app.before_request_funcs[None] == [cfg.check]
    client = app.test_client()
    assert client.get("/").text == "hi"
    devserver.state.publish("demo", "default", "application", {"greeting": "hello"})
    from tests.helpers import wait_until

    wait_until(lambda: client.get("/").text == "hello")


def test_init_app_pattern_and_clear_errors(devserver, make_config):
    cfg = make_config()
    ext = HotConf()
    app = Flask(__name__)
    with pytest.raises(TypeError, match="needs a Config"):
        ext.init_app(app)
    ext.init_app(app, cfg)
    with app.app_context():
        assert current_config() is cfg
    with Flask(__name__).app_context(), pytest.raises(RuntimeError, match="HotConf"):
        current_config()
