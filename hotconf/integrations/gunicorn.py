"""gunicorn integration. In gunicorn.conf.py:

    from hotconf.integrations.gunicorn import post_fork   # noqa: F401

Each worker then arms hotconf right after the fork (joins the poller election, starts following
the shared snapshot) instead of at its first read. Without it hotconf still works: the fork is
seen through ``os.register_at_fork`` and a worker arms itself on its first read.
"""

from __future__ import annotations

from typing import Any

from ..process.binding import arm_all
from ..servers.gunicorn import arms_after_fork


def post_fork(server: Any = None, worker: Any = None) -> None:
    if worker is None or arms_after_fork(worker):
        arm_all()
