"""gunicorn integration. In gunicorn.conf.py:

    from hotconf.integrations.gunicorn import post_fork   # noqa: F401

Each worker then arms hotconf right after the fork (joins the poller election, starts following
the shared snapshot) instead of at its first read. Without it hotconf still works: the fork is
seen through ``os.register_at_fork`` and a worker arms itself on its first read.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("hotconf")


def post_fork(server: Any = None, worker: Any = None) -> None:
    from ..config import live_configs

    for cfg in live_configs():
        try:
            cfg._arm()
        except Exception:  # noqa: BLE001 - a worker must boot even if Apollo is down
            log.exception("hotconf: arming %r after fork failed; it retries on first read", cfg)
