"""A Django project configured through hotconf's Django integration: settings.HOTCONF (here from
the test's environment, as a deployment would set it), the app and the middleware."""

import os

SECRET_KEY = "hotconf-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["hotconf.integrations.django", "shop"]
MIDDLEWARE = ["hotconf.integrations.django.HotconfMiddleware"]
ROOT_URLCONF = "shop.urls"
DATABASES = {}  # read once, at startup: a hot database URL is a cfg.resource, not a setting
USE_TZ = True
HOTCONF = {
    "app_id": os.environ["APP_ID"],
    "server": os.environ["APOLLO_META"],
    "cache_dir": os.environ["APOLLO_CACHE_DIR"],
    "namespaces": os.environ.get("NAMESPACES", "application").split(","),
    "stale_after": float(os.environ.get("STALE_AFTER", "10")),
}
LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"hotconf": {"handlers": ["console"], "level": "INFO"}},
}
