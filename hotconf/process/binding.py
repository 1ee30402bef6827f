"""Binds one Config to the processes it lives in.

A Config is created once (often at import, in a master that forks later) and read in many
processes. The binding decides, per process, when hotconf may start there and starts it:
- in a master that will fork: load once, synchronously, start nothing (a thread holding a lock
  at fork time leaves the children hung); the snapshot is kept aside so each child arms itself;
- elsewhere: on the first read, or eagerly right after the fork (``arm_all``: uWSGI's post-fork
  hook, gunicorn's ``post_fork``, a mule);
- in a forked child: the parent's threads are gone, so its role is forgotten and re-armed.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Callable, List, Optional

from ..cache import LocalCache
from ..changes import ChangeEvent
from ..errors import ApolloError, ConfigUnavailableError
from ..options import Options
from ..reload.controller import ReloadController
from ..runtime import competes_for_poller, will_fork
from ..snapshot import Snapshot
from ..stores import open_local_store
from . import platform
from .poller import Poller
from .role import Role, RoleName

log = logging.getLogger("hotconf")

#: What a binding delivers to: installs a snapshot, returns the change events (none if not newer)
Install = Callable[[Snapshot], List[ChangeEvent]]

_live: weakref.WeakSet[Binding] = weakref.WeakSet()


class Binding:
    def __init__(self, options: Options, install: Install,
                 held: Callable[[], Optional[Snapshot]], forget: Callable[[], None]):
        """``install``/``held``/``forget`` are the reader's side (the Config): take a snapshot,
        say which one it holds, drop it in a forked child."""
        self.options = options
        self.settings = options.settings
        self.cache = LocalCache.for_settings(self.settings)
        self._install, self._held, self._forget = install, held, forget
        self._lock = threading.RLock()
        self._role: Optional[Role] = None
        self._prefork: Optional[Snapshot] = None
        self._reloads: Optional[ReloadController] = None
        self._stopped = False
        self.last_error: Optional[ApolloError] = None
        _live.add(self)
        platform.current()[0].prepare(arm_all)

    # -- arming -----------------------------------------------------------------------------------
    def load(self) -> Snapshot:
        """The slow path of a read: the first one in a process, or any read in a master that
        will fork. Arms hotconf in this process (store, election, poller or reader)."""
        with self._lock:
            held = self._held()
            if held is not None:
                return held
            if self._stopped:
                if self._prefork is not None:
                    return self._prefork
                raise ConfigUnavailableError("this Config was stopped; create a new one")
            server, facts = platform.current()
            if will_fork(facts):
                return self._load_before_fork()
            role = self.arm()
        if self._held() is None and role.name == "reader":
            # Another process polls but has published nothing yet: give it its first load.
            # (Not under self._lock: the delivery we wait for takes it.)
            s = self.settings
            role.wait_ready(s.connect_timeout + s.fetch_timeout + 1.0)
        snapshot = self._held() or self._prefork
        if snapshot is None:
            raise self.unavailable()
        return snapshot

    def _load_before_fork(self) -> Snapshot:
        if self._prefork is None:
            poller = Poller(self.settings, open_local_store("memory", self.cache))
            try:
                self._prefork = poller.load_initial()
                self.last_error = poller.last_error
            finally:
                poller.client.close()
        if self._prefork is None:
            raise self.unavailable()
        return self._prefork

    def arm(self, as_mule: bool = False) -> Role:
        """Start this process's part: on the first read, or eagerly after a fork or in a mule."""
        with self._lock:
            role = self._role
            if role is not None and role.pid == os.getpid():
                return role
            server, facts = platform.current()
            options = self.options
            poller_mode = "auto" if as_mule else options.poller
            role = Role(self.settings, facts, server.open_store(options, facts, self.cache),
                        competes_for_poller(facts, poller_mode), self._deliver, held=self._held,
                        fallback_store=lambda: open_local_store("memory", self.cache))
            self._role = role
            if options.reload_policy.patterns:
                self._reloads = ReloadController(
                    options.reload_policy, server.reloader(options, facts),
                    is_poller=lambda: role.name == "poller")
            role.start()
            if role.poller is not None and role.poller.last_error is not None:
                self.last_error = role.poller.last_error
            return role

    def _deliver(self, snapshot: Snapshot) -> None:
        events = self._install(snapshot)
        reloads = self._reloads
        if reloads is not None and events:
            reloads.feed(events)

    def after_fork_in_child(self) -> None:
        """The role's threads did not survive the fork: forget them; the next read re-arms."""
        self._role = None
        self._reloads = None
        self._lock = threading.RLock()
        self._forget()

    # -- this process -----------------------------------------------------------------------------
    def _own_role(self) -> Optional[Role]:
        role = self._role
        return role if role is not None and role.pid == os.getpid() else None

    def check(self) -> None:
        """Swap in a newer snapshot now if the store has one (cheap: a version read)."""
        role = self._own_role()
        if role is not None:
            role.check()

    @property
    def role(self) -> RoleName:
        role = self._own_role()
        return role.name if role is not None else "idle"

    @property
    def stopped(self) -> bool:
        return self._stopped

    def unavailable(self) -> ConfigUnavailableError:
        s = self.settings
        reason = str(self.last_error) if self.last_error else "no answer yet"
        cache = self.cache.path
        cached = (f"the local cache {cache} could not be used (see the log)" if cache.exists()
                  else f"there is no local cache at {cache}")
        return ConfigUnavailableError(
            f"no configuration for app {s.app_id!r} cluster {s.cluster!r}: nothing loaded from "
            f"the {s.servers_description} ({reason}) and {cached}. hotconf keeps retrying in "
            f"the background; a cache is written after the first successful load"
        )

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            role, self._role = self._role, None
        if role is not None and role.pid == os.getpid():
            role.stop()
        if self._reloads is not None:
            self._reloads.close()


def live_bindings() -> List[Binding]:
    """Every binding of this process whose Config has not been stopped."""
    return [b for b in list(_live) if not b.stopped]


def arm_all(as_mule: bool = False) -> List[Binding]:
    """Arm every live Config in this process (after a fork, or in a mule). A failure is logged,
    not raised: a worker must boot even if Apollo is down; it retries on its first read."""
    armed = []
    for binding in live_bindings():
        try:
            binding.arm(as_mule=as_mule)
            armed.append(binding)
        except Exception:  # noqa: BLE001
            log.exception("hotconf: arming app %r after fork failed; it retries on first read",
                          binding.settings.app_id)
    return armed


def _after_fork_in_child() -> None:
    for binding in list(_live):
        binding.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
