import os
import uuid
from dataclasses import dataclass

from django.http import JsonResponse
from django.urls import include, path

from hotconf.integrations.django import config


@dataclass
class Limits:
    """Typed settings: limits.per_page, validated before a release applies."""

    per_page: int = 20


limits = config.bind(Limits, prefix="limits")


class Client:
    """Stands for a Redis client or an HTTP session built from a URL."""

    def __init__(self, url):
        self.url, self.id = url, uuid.uuid4().hex[:6]


# Each worker's own, rebuilt when cache.url changes: no reload.
cache = config.resource(lambda c: Client(c.get("cache.url", "redis://localhost/0")),
                        keys=["cache.*"], name="cache")


def index(request):
    return JsonResponse({"pid": os.getpid(), "greeting": config.get("greeting", "(not set)"),
                         "per_page": limits.per_page, "cache": cache().url,
                         "client": cache().id})


urlpatterns = [path("", index), path("hotconf/", include("hotconf.integrations.django.urls"))]
