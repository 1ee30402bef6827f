"""Flask integration: ``HotConf(app, cfg)`` or ``HotConf().init_app(app, cfg)``.

It keeps the Config in ``app.extensions["hotconf"]`` (``current_config()`` finds it) and checks
freshness at the start of each request: a version read, so a worker that missed a push still
answers the request with the newest snapshot the host has. With ``metrics_path="/metrics"`` it
also serves the host's metrics there (every process of the host, whichever worker answers;
``pip install 'hotconf[metrics]'``).
"""

from __future__ import annotations

from typing import Any, Optional

from ..config import Config

EXTENSION_KEY = "hotconf"


class HotConf:
    def __init__(self, app: Any = None, cfg: Optional[Config] = None,
                 metrics_path: Optional[str] = None):
        self.cfg = cfg
        self.metrics_path = metrics_path
        if app is not None:
            self.init_app(app, cfg)

    def init_app(self, app: Any, cfg: Optional[Config] = None) -> None:
        cfg = cfg or self.cfg
        if cfg is None:
            raise TypeError("HotConf needs a Config: HotConf(app, cfg) or init_app(app, cfg)")
        self.cfg = cfg
        app.extensions[EXTENSION_KEY] = cfg
        app.before_request(cfg.check)
        if self.metrics_path:
            from ..metrics import _prometheus

            _prometheus()  # a missing prometheus_client fails here, at startup, not at a scrape
            app.add_url_rule(self.metrics_path, "hotconf_metrics", _metrics_view(cfg))


def _metrics_view(cfg: Config) -> Any:
    def hotconf_metrics() -> Any:
        from flask import Response

        from ..metrics import CONTENT_TYPE, metrics_text

        return Response(metrics_text(cfg), content_type=CONTENT_TYPE)

    return hotconf_metrics


def current_config() -> Config:
    """The Config of the current Flask app."""
    from flask import current_app

    try:
        cfg: Config = current_app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("this Flask app has no hotconf: call HotConf(app, cfg) first") from None
    return cfg
