"""Views for ``urls.py``: ``path("hotconf/", include("hotconf.integrations.django.urls"))``
serves ``hotconf/health`` (the host's status as JSON) and ``hotconf/metrics`` (Prometheus text,
``pip install 'hotconf[metrics]'``). Both read the host's registry: whichever worker answers,
they show every process of the host. Protect them as you protect other operational endpoints.

``health`` answers 503 only when this host serves wrong config: a process STALE, a resource or
model failing, nothing serving. A config service that is down (the poller failing) is
``"degraded": true`` with 200: every instance of a fleet sees the same outage, and a probe
that failed on it would take them all out of service while they serve their last good config.
"""

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
    wrong = bool(view.stale or view.failing_dependents or not view.rows)
    document = {**status_document(cfg.settings, view), "healthy": not wrong,
                "degraded": view.exit_status != EXIT_CURRENT and not wrong}
    return JsonResponse(document, status=503 if wrong else 200)


def metrics(request: Any) -> Any:
    from ...metrics import CONTENT_TYPE, metrics_text

    return HttpResponse(metrics_text(get_config()), content_type=CONTENT_TYPE)
