"""uWSGI entry points for users: the mule, and the master-side import.

In uwsgi.ini (see uwsgi.ini.example for every option explained):

    cache2 = name=hotconf,items=16,blocksize=1048576   ; the shared snapshot
    mule = hotconf_mule.py                             ; the poller, out of the workers' way
    env = HOTCONF_POLLER=mule                          ; workers never poll themselves

with hotconf_mule.py:

    from hotconf.integrations.uwsgi import run_mule
    from myapp import cfg
    run_mule(cfg)

Under lazy-apps, add ``shared-import = hotconf.integrations.uwsgi`` so the workers' signal is
registered in the master (a signal registered in a lazy worker reaches one worker only):
importing this module imports hotconf, whose uWSGI server module registers it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import HotconfError
from ..process.binding import live_bindings

log = logging.getLogger("hotconf")


def run_mule(*configs: Any) -> None:  # pragma: no cover - runs in a mule
    """The body of a hotconf mule: poll for ``configs`` (default: every Config this process
    knows, e.g. the ones inherited from the master) and never return."""
    bindings = [cfg._binding for cfg in configs] or live_bindings()
    if not bindings:
        raise HotconfError("run_mule() found no Config: pass the app's Config objects")
    for binding in bindings:
        binding.arm(as_mule=True)
    log.info("hotconf: mule standing by to poll for %s",
             ", ".join(b.settings.app_id for b in bindings))
    while True:
        time.sleep(3600)
