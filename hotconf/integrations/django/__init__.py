"""Django integration (``pip install 'hotconf[django]'``).

In settings.py::

    INSTALLED_APPS = [..., "hotconf.integrations.django"]
    MIDDLEWARE = ["hotconf.integrations.django.HotconfMiddleware", ...]
    HOTCONF = {"app_id": "shop", "server": "http://apollo-meta:8080",
               "namespaces": ["application"], "reload_on": ["db.*"]}

and read ``hotconf.integrations.django.config`` (a ``Config``) anywhere: in views, forms, tasks.
``HOTCONF`` takes ``Config``'s keyword arguments; what it sets wins over Apollo's environment
variables (``APP_ID``, ``APOLLO_META``...), which fill in the rest. The Config is made when
first asked for (building one is pure: no thread, no request) and checked when the apps load,
so a bad ``HOTCONF`` fails ``manage.py check`` and the server's start, not a request.

``manage.py hotconf status|get|dump|metrics`` run the ``hotconf`` command with the project's
settings; ``hotconf.integrations.django.urls`` has a health view and the metrics.

Top floor: may import anything of hotconf; Django is imported only in here (never by
``import hotconf``).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Optional

from ...config import Config
from ...errors import ConfigUnavailableError, SettingsError

__all__ = ["HotconfMiddleware", "config", "get_config", "hotconf_settings"]

_config: Optional[Config] = None
_made = threading.Lock()


def hotconf_settings() -> Dict[str, Any]:
    """``settings.HOTCONF`` as a dict (empty if the project sets none: the environment only)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    given = getattr(settings, "HOTCONF", None) or {}
    if not isinstance(given, dict):
        raise ImproperlyConfigured(f"settings.HOTCONF must be a dict of Config(...) arguments, "
                                   f"not {type(given).__name__}")
    return dict(given)


def get_config() -> Config:
    """The project's Config, made from ``settings.HOTCONF`` the first time it is asked for."""
    global _config
    if _config is None:
        with _made:
            if _config is None:
                from django.core.exceptions import ImproperlyConfigured

                _refuse_in_settings_module()
                given = hotconf_settings()
                on_reload = given.get("on_reload")
                if isinstance(on_reload, str):  # a dotted path, as Django settings name hooks
                    from django.utils.module_loading import import_string

                    try:
                        given["on_reload"] = import_string(on_reload)
                    except ImportError as exc:
                        raise ImproperlyConfigured(f"settings.HOTCONF['on_reload']: {exc}") \
                            from None
                try:
                    _config = Config(**given)
                except (SettingsError, TypeError) as exc:
                    raise ImproperlyConfigured(f"settings.HOTCONF: {exc}") from None
    return _config


def _refuse_in_settings_module() -> None:
    """``config`` read while settings.py itself is being imported would be made before
    ``HOTCONF`` exists (from the environment alone, and kept so for the process)."""
    import os
    import sys

    name = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    spec = getattr(sys.modules.get(name), "__spec__", None)
    if spec is not None and getattr(spec, "_initializing", False):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"hotconf.integrations.django.config was used inside {name} while it is being "
            f"imported, before settings.HOTCONF exists. To set a Django setting from Apollo "
            f"there, make a Config of its own: `from hotconf import Config; "
            f"cfg = Config(app_id=..., ...)` (its values are read once, at start)")


def __getattr__(name: str) -> Any:
    # ``from hotconf.integrations.django import config`` works before the apps are loaded too:
    # only the settings are needed, and making a Config starts nothing.
    if name == "config":
        return get_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class HotconfMiddleware:
    """Checks freshness at the start of each request (a version read: a worker that missed a
    push still answers with the newest snapshot the host has), and arms hotconf in a worker
    whose requests read nothing else (so its bound models follow releases)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]):
        self.get_response = get_response
        self.config = get_config()
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self._acall(request)
        self.config.check()
        return self.get_response(request)

    async def _acall(self, request: Any) -> Any:
        config = self.config
        if config.role == "idle" or config.source == "none":
            # Arming does I/O, and so does a first read while the poller has published
            # nothing yet (it waits for that first load): both off the event loop, so the
            # view's reads are dict lookups.
            from asgiref.sync import sync_to_async

            await sync_to_async(self._prepare, thread_sensitive=False)()
        else:
            config.check()  # a version read
        return await self.get_response(request)

    def _prepare(self) -> None:
        self.config.check()
        if self.config.source == "none":
            try:
                self.config.start()
            except ConfigUnavailableError:
                pass  # the view's read says so, as it would without the middleware
