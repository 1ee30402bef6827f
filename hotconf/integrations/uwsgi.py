"""uWSGI entry points for users: the mule, and the master-side import.

In uwsgi.ini (see uwsgi.ini.example for every option explained):

    cache2 = name=hotconf,items=16,blocksize=1048576   ; the shared snapshot
    mule = hotconf_mule.py                             ; the poller, out of the workers' way
    env = HOTCONF_POLLER=mule                          ; workers leave the start to it

(uWSGI has no inline comments: put those on lines of their own.) The mule is the host's
preferred poller: a worker polls only while the mule is down, from the moment it dies until
uWSGI has respawned it, then hands the role back.

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
from ..servers.uwsgi import PUSH

log = logging.getLogger("hotconf")


def run_mule(*configs: Any, poll_interval: float = 1.0) -> None:  # pragma: no cover - in a mule
    """The body of a hotconf mule: poll for ``configs`` (default: every Config this process
    knows, e.g. the ones inherited from the master) and never return. (``poll_interval`` is
    accepted for compatibility and unused: the mule waits on the poller, not a timer.)"""
    bindings = [cfg._binding for cfg in configs] or live_bindings()
    if not bindings:
        raise HotconfError("run_mule() found no Config: pass the app's Config objects")
    for binding in bindings:
        binding.arm(as_mule=True)
    log.info("hotconf: mule standing by to poll for %s",
             ", ".join(b.settings.app_id for b in bindings))
    while True:
        time.sleep(3600)


# `shared-import = hotconf.integrations.uwsgi`: register the workers' signal in the master, before
# the fork, even under lazy-apps (a no-op outside the uWSGI master).
try:
    PUSH.register_in_master()
except Exception:  # noqa: BLE001 - never break the import of an app
    log.exception("hotconf: could not register the uWSGI signal")
