"""The smallest Django project that reads Apollo through a module-level Config, as in the
Apollo issue "uwsgi+django 不能获取最新apollo数据". APP_ID, APOLLO_META and APOLLO_CACHE_DIR come
from the environment."""

SECRET_KEY = "hotconf-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["djsite"]
MIDDLEWARE = []
ROOT_URLCONF = "djsite.urls"
DATABASES = {}
USE_TZ = True
LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"hotconf": {"handlers": ["console"], "level": "INFO"}},
}
