"""Views for ``urls.py``: ``path("hotconf/", include("hotconf.integrations.django.urls"))``
serves ``hotconf/health`` (the host's status as JSON: 200 when every process is current and
the poller well, 503 otherwise) and ``hotconf/metrics`` (Prometheus text, ``pip install
'hotconf[metrics]'``). Both read the host's registry: whichever worker answers, they show every
process of the host. Protect them as you protect other operational endpoints."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse, JsonResponse

from ...cli import status_document
from ...registry import read_host
from ...status import EXIT_CURRENT
from . import get_config


def health(request: Any) -> Any:
    cfg = get_config()
    view = read_host(cfg.settings)
    return JsonResponse(status_document(cfg.settings, view),
                        status=200 if view.exit_status == EXIT_CURRENT else 503)


def metrics(request: Any) -> Any:
    from ...metrics import CONTENT_TYPE, metrics_text

    return HttpResponse(metrics_text(get_config()), content_type=CONTENT_TYPE)
