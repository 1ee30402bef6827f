import os
import time

from django.http import JsonResponse
from django.urls import path

from .conf import GREETING_AT_IMPORT, cfg


def index(request):
    time.sleep(float(request.GET.get("sleep", "0")))  # lets a test reach every worker
    return JsonResponse({"pid": os.getpid(), "greeting": cfg.get("greeting"), "role": cfg.role,
                         "at_import": GREETING_AT_IMPORT})


urlpatterns = [path("", index)]
