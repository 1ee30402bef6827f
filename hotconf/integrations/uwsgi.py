"""uWSGI integration: the cache store, the workers' signal, and the mule entry point.

In uwsgi.ini (see uwsgi.ini.example for every option explained):

    cache2 = name=hotconf,items=16,blocksize=1048576   ; the shared snapshot
    mule = hotconf_mule.py                             ; the poller, out of the workers' way
    env = HOTCONF_POLLER=mule                          ; workers never poll themselves

with hotconf_mule.py:

    from hotconf.integrations.uwsgi import run_mule
    from myapp import cfg
    run_mule(cfg)

Under lazy-apps, add ``shared-import = hotconf.integrations.uwsgi`` so the workers' signal is
registered in the master (a signal registered in a lazy worker reaches one worker only).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Callable, Optional

from ..errors import HotconfError
from ..snapshot import Snapshot
from ..stores.base import BaseStore

log = logging.getLogger("hotconf")

try:
    import uwsgi  # type: ignore[import-not-found]
except ImportError:  # outside uWSGI
    uwsgi = None

FIRST_SIGNAL = 100

_signal_number: Optional[int] = None
_callbacks: list = []
_callbacks_lock = threading.Lock()


class SnapshotTooLargeError(HotconfError):
    """The snapshot does not fit the uWSGI cache's blocksize."""


def signal_number() -> Optional[int]:
    return _signal_number


def _on_signal(signum: int) -> None:
    """Runs in each worker's main loop, between requests: pick up the newer snapshot."""
    with _callbacks_lock:
        callbacks = list(_callbacks)
    for callback in callbacks:
        try:
            callback()
        except Exception:  # noqa: BLE001
            log.exception("hotconf: refreshing after uWSGI signal %d failed", signum)


def arm_master() -> Optional[int]:
    """In the uWSGI master, before the fork: register the signal that tells every worker a new
    snapshot is in the store. Safe to call more than once; a no-op elsewhere."""
    global _signal_number
    if uwsgi is None or _signal_number is not None:
        return _signal_number
    if uwsgi.masterpid() != os.getpid() or uwsgi.worker_id() != 0 or uwsgi.mule_id() != 0:
        return None  # only the master's registration reaches all workers
    for number in range(FIRST_SIGNAL, 256):
        if not uwsgi.signal_registered(number):
            uwsgi.register_signal(number, "workers", _on_signal)
            _signal_number = number
            return number
    log.warning("hotconf: no free uWSGI signal number; workers will notice changes by watching "
                "the cache file instead")
    return None


_post_fork_armed = False


def arm_post_fork(callback: Callable[[], None]) -> None:
    """Run ``callback`` in every worker and mule right after uWSGI forks it (uwsgidecorators'
    hook chain, so the app's own @postfork hooks keep working)."""
    global _post_fork_armed
    if _post_fork_armed:
        return
    try:
        from uwsgidecorators import postfork
    except Exception:  # noqa: BLE001 - no master: workers arm on their first read instead
        return

    postfork(callback)
    _post_fork_armed = True


def add_refresher(callback: Callable[[], None]) -> bool:
    """Have ``callback`` run in this worker when the poller signals. False if no signal."""
    if _signal_number is None:
        return False
    with _callbacks_lock:
        _callbacks.append(callback)
    return True


def remove_refresher(callback: Callable[[], None]) -> None:
    with _callbacks_lock:
        if callback in _callbacks:
            _callbacks.remove(callback)


def notify_workers() -> None:
    if uwsgi is not None and _signal_number is not None:
        try:
            uwsgi.signal(_signal_number)
        except Exception:  # noqa: BLE001 - a missed push is caught by the workers' checks
            log.warning("hotconf: raising uWSGI signal %d failed", _signal_number)


class UwsgiCacheStore(BaseStore):
    """The snapshot as one value in a uWSGI ``cache2``, with its version beside it."""

    name = "uwsgi"

    def __init__(self, cache_name: str, key: str, blocksize: int, bitmap: bool = False):
        super().__init__()
        if uwsgi is None:
            raise HotconfError("the uWSGI cache store only works inside uWSGI")
        self.cache_name, self.key, self.blocksize, self.bitmap = cache_name, key, blocksize, bitmap
        self._version_key = key + ":version"

    def _encode(self, snapshot: Snapshot) -> bytes:
        data = json.dumps(snapshot.to_dict(), ensure_ascii=False, separators=(",", ":"))
        return data.encode("utf-8")

    def _too_large(self, size: int) -> SnapshotTooLargeError:
        return SnapshotTooLargeError(
            f"hotconf: the snapshot is {size} bytes but the uWSGI cache '{self.cache_name}' holds "
            f"at most {self.blocksize} bytes per value (blocksize): raise it in uwsgi.ini, e.g. "
            f"cache2 = name={self.cache_name},items=16,blocksize={_round_up(size)}. Until then "
            f"workers read the snapshot from the local cache file")

    def publish(self, snapshot: Snapshot) -> bool:
        data = self._encode(snapshot)
        if len(data) > self.blocksize and not self.bitmap:
            raise self._too_large(len(data))
        uwsgi.lock()
        try:
            current = uwsgi.cache_get(self._version_key, self.cache_name)
            if current is not None and current.isdigit() and snapshot.version <= int(current):
                return False
            # uWSGI reports an oversized or failed write only by returning None
            if uwsgi.cache_update(self.key, data, 0, self.cache_name) is None:
                raise self._too_large(len(data))
            uwsgi.cache_update(self._version_key, str(snapshot.version).encode(), 0,
                               self.cache_name)
        finally:
            uwsgi.unlock()
        self._notify_local(snapshot)
        notify_workers()
        return True

    def latest(self, previous: Optional[Snapshot] = None) -> Optional[Snapshot]:
        data = uwsgi.cache_get(self.key, self.cache_name)
        if data is None:
            return None  # empty after a full reload: readers fall back to the cache file
        try:
            return Snapshot.from_dict(json.loads(data.decode("utf-8")), source="store",
                                      previous=previous)
        except Exception as exc:  # noqa: BLE001
            log.warning("hotconf: unreadable snapshot in uWSGI cache '%s' (%s)", self.cache_name, exc)
            return None

    def token(self) -> Any:
        return uwsgi.cache_get(self._version_key, self.cache_name)


def _round_up(size: int) -> int:
    block = 65536
    while block < size * 2:
        block *= 2
    return block


def run_mule(*configs: Any, poll_interval: float = 1.0) -> None:  # pragma: no cover - in a mule
    """The body of a hotconf mule: poll for ``configs`` (default: every Config this process
    knows, e.g. the ones inherited from the master) and never return."""
    from ..config import live_configs

    targets = list(configs) or live_configs()
    if not targets:
        raise HotconfError("run_mule() found no Config: pass the app's Config objects")
    for cfg in targets:
        cfg._arm(as_mule=True)
    log.info("hotconf: mule %s standing by to poll for %s", uwsgi.mule_id() if uwsgi else "?",
             ", ".join(c.settings.app_id for c in targets))
    while True:
        time.sleep(3600)


# `shared-import = hotconf.integrations.uwsgi` registers the signal in the master.
if uwsgi is not None:
    try:
        arm_master()
    except Exception:  # noqa: BLE001 - never break the import of an app
        log.exception("hotconf: could not register the uWSGI signal")
