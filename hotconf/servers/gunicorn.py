"""gunicorn: the arbiter (master) imports the app only with ``--preload``, then forks workers;
a worker is told apart from the arbiter, and a reload is SIGHUP to the arbiter.

The user-facing hook (``post_fork`` for gunicorn.conf.py) is ``hotconf.integrations.gunicorn``.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Optional

from ..options import Options
from ..process.platform import Platform
from ..reload.actions import Reloader
from ..reload.policy import ReloadRequest
from ..runtime import ProcessFacts

_forked_after_import = False


def _mark_forked() -> None:
    global _forked_after_import
    _forked_after_import = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked)


def _is_arbiter() -> bool:
    """gunicorn's master imports the app only with --preload, before forking. Workers are its
    children: either we saw the fork (hotconf was imported before it), or our parent is a
    gunicorn process (the app was imported after it)."""
    if _forked_after_import:
        return False
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            parent = fh.read().replace(b"\0", b" ")
    except OSError:
        return False  # cannot tell: behave as a worker rather than never polling
    return b"gunicorn" not in parent


class GunicornReloader(Reloader):
    description = "gunicorn reload (SIGHUP to the arbiter)"

    def __call__(self, request: ReloadRequest) -> None:
        os.kill(os.getppid(), signal.SIGHUP)  # the poller is a worker: its parent is the arbiter


class GunicornServer(Platform):
    name = "gunicorn"

    def detect(self) -> Optional[ProcessFacts]:
        if "gunicorn.arbiter" not in sys.modules:
            return None
        return ProcessFacts(server="gunicorn", gunicorn_arbiter=_is_arbiter())

    def reloader(self, options: Options, facts: ProcessFacts) -> Reloader:
        if options.reload in ("auto", "gunicorn"):
            return GunicornReloader()
        return super().reloader(options, facts)
