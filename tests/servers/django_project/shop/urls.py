import os
import time
from dataclasses import dataclass

from django.http import JsonResponse
from django.urls import include, path

from hotconf.integrations.django import config


@dataclass
class Limits:
    per_page: int = 20


limits = config.bind(Limits, prefix="limits")  # typed settings, bound once at import


def index(request):
    time.sleep(float(request.GET.get("sleep", "0")))  # lets a test reach every worker
    return JsonResponse({"pid": os.getpid(), "greeting": config.get("greeting"),
                         "role": config.role, "per_page": limits.per_page})


def model_only(request):
    """Reads only the bound model (the middleware's check is what arms a fresh worker)."""
    time.sleep(float(request.GET.get("sleep", "0")))
    return JsonResponse({"pid": os.getpid(), "per_page": limits.per_page})


async def async_index(request):
    """An async view: under ASGI its reads run on the event loop."""
    return JsonResponse({"pid": os.getpid(), "greeting": config.get("greeting")})


urlpatterns = [path("", index), path("limits/", model_only), path("async/", async_index),
               path("hotconf/", include("hotconf.integrations.django.urls"))]
