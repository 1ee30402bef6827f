"""A Django project reading Apollo through hotconf. Run it against the dev server: see README.md."""

import os

SECRET_KEY = "example-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["hotconf.integrations.django", "shop"]
# First, so every request (and every worker's first one) sees the host's newest snapshot.
MIDDLEWARE = ["hotconf.integrations.django.HotconfMiddleware"]
ROOT_URLCONF = "shop.urls"
USE_TZ = True

# Config(...)'s arguments; what is set here wins over APP_ID, APOLLO_META and the other
# environment variables, which fill in the rest.
HOTCONF = {
    "app_id": os.environ.get("APP_ID", "demo"),
    "namespaces": ["application"],
}

# Read once, when Django starts: a release cannot change it. A database URL that must follow
# Apollo is a cfg.resource (see shop/urls.py), or a key in reload_on.
DATABASES = {}

LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"hotconf": {"handlers": ["console"], "level": "INFO"}},
}
