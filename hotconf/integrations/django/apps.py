"""The Django app: ``INSTALLED_APPS += ["hotconf.integrations.django"]``."""

from __future__ import annotations

from django.apps import AppConfig


class HotconfAppConfig(AppConfig):
    name = "hotconf.integrations.django"
    label = "hotconf"
    verbose_name = "hotconf (Apollo configuration)"

    def ready(self) -> None:
        # settings.HOTCONF is checked as the apps load (a bad key fails `manage.py check` and
        # the server's start, not a request). Making the Config starts nothing: no thread, no
        # request, so this is safe in a master that forks its workers later.
        from . import get_config

        get_config()
