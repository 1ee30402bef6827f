import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_wsgi_application()

# Warm up as many projects do: the URLconf (and the model it binds) is loaded here, in the
# uWSGI master or gunicorn's --preload arbiter, before the fork, not at a worker's first request.
import shop.urls  # noqa: E402, F401
