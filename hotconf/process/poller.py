"""The long-poll loop: keeps one app/cluster's snapshot current and publishes it.

It runs in exactly one process per host (which one is decided elsewhere) and is the only part
of hotconf that talks to Apollo. Rules it keeps:
- a notification id advances only after the release it announced was fetched, so a failed fetch
  is retried, never lost;
- every failure backs off (1 s doubling to 120 s, with jitter); a 304 is not a failure;
- a bad release (unparsable body, broken yaml) never replaces the last good one;
- after a failed poll the ids go back to -1: the next poll answers at once with the server's
  current ids, and the fetches it triggers carry release keys (304 when unchanged). That is how a
  restarted config service with lower ids is picked up instead of waited on forever.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, List, Optional

from ..apollo.client import ApolloClient
from ..apollo.notifications import NotificationState
from ..apollo.responses import Notification
from ..backoff import Backoff
from ..errors import ApolloError, AuthError, FormatError, NotFoundError, StoreError
from ..options import Settings
from ..snapshot import NamespaceSnapshot, Snapshot
from ..stores.base import Store
from .report import PollerReport

log = logging.getLogger("hotconf")


class Poller:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: Optional[ApolloClient] = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Optional[Callable[[float], None]] = None,
        now_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        report: Optional[PollerReport] = None,
    ):
        """``store`` is where snapshots go (with the cache file behind it, see stores/);
        ``client``, ``clock`` and ``wait`` (sleep between attempts; default: until stopped)
        are seams for tests; ``report`` keeps the poller's health in the host registry."""
        self.settings = settings
        self.store = store
        self.client = client or ApolloClient(settings)
        self._clock = clock
        self._wait_for = wait
        self._now_us = now_us
        self._state = NotificationState(settings.namespaces)
        self._backoff = Backoff(settings.backoff_initial, settings.backoff_max)
        self._snapshot: Optional[Snapshot] = None
        self._stop = threading.Event()
        self._publish_lock = threading.RLock()
        self._rewrite_timer: Optional[threading.Timer] = None
        self._rewrite_backoff = Backoff(settings.backoff_initial, min(30.0, settings.backoff_max))
        self._thread: Optional[threading.Thread] = None
        self._next_refresh = 0.0
        self.report = report or PollerReport(None)
        self._notified_by: Optional[str] = None
        self.last_error: Optional[ApolloError] = None
        self._store_error: Optional[str] = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        thread = threading.Thread(target=self._run, name="hotconf-poller", daemon=True)
        thread.start()
        self._thread = thread  # only a started thread: stop() may join it from another thread
        with self._publish_lock:
            if self.store.unwritten is not None:  # refused before the start (load_initial)
                self._schedule_rewrite()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the loop: the request in flight (a held long poll, a slow fetch) is aborted,
        and nothing is published once this returns."""
        with self._publish_lock:  # a publish under way finishes first; none starts after
            self._stop.set()
            if self._rewrite_timer is not None:
                self._rewrite_timer.cancel()
        thread = self._thread
        deadline = time.monotonic() + timeout
        while True:
            # Again until the thread ends: a request it began as this stop began, its socket
            # not yet connected at the first abort, is held until the second finds it.
            self.client.abort()
            if thread is None or thread is threading.current_thread():
                break
            thread.join(min(0.01, max(0.0, deadline - time.monotonic())))
            if not thread.is_alive() or time.monotonic() >= deadline:
                break
        self._thread = None
        self.client.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    # -- loading ---------------------------------------------------------------------------------
    def load_initial(self, held: Optional[Snapshot] = None) -> Optional[Snapshot]:
        """Synchronous first load: the config service, else the local cache.

        Bounded: the first namespace that cannot be reached at all stops the remote attempts;
        the background loop takes over from there. ``held`` (what this process serves, when it
        takes over from another poller) spares decoding the namespaces it already has.

        Taking over (``held``, and the host has a snapshot of every namespace): nothing is
        fetched here. The first poll, its ids at -1 as at any start, is answered at once with
        every namespace's current id, and fetching then (304 for a namespace unchanged) does
        in one round what fetching first did in two: a fetch, a publish, the poll answered at
        once, a fetch again (304), a publish of the ids, and only then the poll that is held.
        This process and the host keep serving the snapshot meanwhile, as they did.
        """
        self._next_refresh = self._clock() + self.settings.refresh_interval
        # Start from the newest snapshot the host has (the store falls back to the cache
        # file), so this poller's versions continue the sequence instead of repeating it.
        cached = self.store.latest(held)
        if held is not None and cached is not None and \
                all(name in cached.namespaces for name in self.settings.namespaces):
            newest = cached if cached.newer_than(held) else held  # (a file behind its front)
            with self._publish_lock:
                self._snapshot = newest
            return newest
        base = cached.namespaces if cached is not None else {}
        loaded: Dict[str, NamespaceSnapshot] = {}
        remote_ok = False
        for name in self.settings.namespaces:
            previous = base.get(name)
            try:
                result = self._fetch(name, previous, messages=None)
            except NotFoundError as exc:
                self._note_error(exc, level=logging.WARNING)
                if previous is not None and previous.found:
                    log.warning("hotconf: namespace %r is not on the config service (404); "
                                "serving the cached release %s", name, previous.release_key)
                    loaded[name] = previous
                else:
                    loaded[name] = NamespaceSnapshot.missing(name)
                remote_ok = True
                continue
            except ApolloError as exc:
                self._note_error(exc)
                self.report.failed(exc, 0.0)
                break  # unreachable or refused: the rest would fail the same way
            remote_ok = True
            loaded[name] = result if result is not None else previous  # type: ignore[assignment]
        if not loaded and cached is None:
            return None
        namespaces = {}
        for name in self.settings.namespaces:
            namespaces[name] = loaded.get(name) or base.get(name) or NamespaceSnapshot.missing(name)
        from_remote = remote_ok and len(loaded) == len(self.settings.namespaces)
        if cached is not None and not from_remote:
            log.warning("hotconf: serving app %r from the local cache (written %s) until the "
                        "config service answers", self.settings.app_id,
                        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cached.created_at)))
        version = self._next_version(cached)
        snapshot = Snapshot(self.settings.app_id, self.settings.cluster, namespaces,
                            version=version, source="remote" if from_remote else "cache")
        self._install(snapshot)
        if from_remote:
            self.report.succeeded()
        return snapshot

    def _fetch(self, name: str, previous: Optional[NamespaceSnapshot],
               messages) -> Optional[NamespaceSnapshot]:
        """The namespace's new release, or None if ``previous`` is still current (304).

        Raises ApolloError; a release whose content does not parse is logged and treated as
        "no change" so the last good one stays.
        """
        known = previous if previous is not None and previous.found else None
        config = self.client.fetch_config(
            name,
            release_key=known.release_key if known else None,
            messages=messages,
            previous=dict(known.configurations) if known else None,
            prefer=self._notified_by,
        )
        self.report.fetched()
        if config is None:
            return None
        if known is not None and known.is_release(config.release_key, True, config.configurations):
            return None
        try:
            return NamespaceSnapshot(name, config.configurations, config.release_key,
                                     self._state.id_of(name), part=config.configurations_json)
        except FormatError as exc:
            log.error("hotconf: release %s of namespace %r is not usable (%s); keeping release "
                      "%s. Fix the content in Apollo and publish again", config.release_key, name,
                      exc, known.release_key if known else "none")
            return None

    # -- the loop ----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the loop must survive a bug as well as a fault
                log.exception("hotconf: unexpected error in the poller; retrying")
                self._wait(self._backoff.next_delay())

    def step(self) -> None:
        if self._clock() >= self._next_refresh:
            self._refresh_all()
        try:
            notifications = self.client.poll(self._state.ids())
        except ApolloError as exc:
            if self._stop.is_set():
                return  # an abandoned poll of a stopped poller: nothing to report
            self._failed(exc, "long poll")
            self._state.reset()
            return
        self._notified_by = self.client.last_poll_service
        if self._stop.is_set():
            return
        self.report.polled(self._notified_by, dict(self._state.ids()))
        if notifications:
            if self._apply(notifications):
                self._succeeded()
        else:
            self._succeeded()

    def _apply(self, notifications: List[Notification]) -> bool:
        current = self._snapshot
        updates: Dict[str, NamespaceSnapshot] = {}
        ok = True
        for note in notifications:
            for name in self._state.targets(note):
                previous = (updates.get(name) or
                            (current.namespaces.get(name) if current is not None else None))
                try:
                    result = self._fetch(name, previous, self._state.pending_messages(name, note))
                except NotFoundError:
                    result = None if previous is None or not previous.found else \
                        NamespaceSnapshot.missing(name)
                    if result is not None:
                        log.warning("hotconf: namespace %r no longer has a release (404); its keys "
                                    "are gone", name)
                except ApolloError as exc:
                    self._failed(exc, f"loading namespace {name!r} after a notification")
                    ok = False
                    continue  # the id stays behind: the next poll answers at once and we retry
                self._state.advance(name, note)
                new_id = self._state.id_of(name)
                if result is not None:
                    updates[name] = result.with_notification_id(new_id)
                elif previous is not None and previous.notification_id != new_id:
                    # Same release under a newer id: the fetch that follows a notification can
                    # return the release of the next one (published in between), whose own
                    # notification then meets a 304. The snapshot carries the newest id.
                    updates[name] = previous.with_notification_id(new_id)
        if updates:
            self._publish(updates)
        return ok

    def _refresh_all(self) -> None:
        """Periodic safety net (as Java's 5-minute refresh): fetch every namespace with its
        release key; a change that no notification announced means our ids are not the
        server's, so they start over."""
        self._next_refresh = self._clock() + self.settings.refresh_interval
        current = self._snapshot
        updates = {}
        for name in self.settings.namespaces:
            previous = current.namespaces.get(name) if current is not None else None
            try:
                result = self._fetch(name, previous, self._state.messages_of(name))
            except NotFoundError:
                continue
            except ApolloError as exc:
                self._note_error(exc)
                self.report.failed(exc, 0.0)
                return
            if result is not None:
                updates[name] = result
        if updates:
            log.warning("hotconf: the periodic refresh found releases no notification announced "
                        "(%s); resynchronising notification ids", ", ".join(updates))
            self._state.reset()
            self._publish(updates)

    # -- publishing ---------------------------------------------------------------------------------
    def _next_version(self, after: Optional[Snapshot]) -> int:
        """Versions are the host's clock in microseconds, and always above ``after``: so they
        compare across pollers (a new poller, after a crash, a recycle, or the loss of every
        file, publishes above what any process holds) while still only moving forward."""
        return max(self._now_us(), after.version + 1 if after is not None else 1)

    def _publish(self, updates: Dict[str, NamespaceSnapshot]) -> None:
        current = self._snapshot
        if current is None:
            namespaces = {n: NamespaceSnapshot.missing(n) for n in self.settings.namespaces}
            namespaces.update(updates)
            snapshot = Snapshot(self.settings.app_id, self.settings.cluster, namespaces,
                                self._next_version(None))
        else:
            snapshot = current.replace(updates, source="remote",
                                       version=self._next_version(current))
        released = [f"{n}@{ns.release_key}" for n, ns in updates.items()
                    if current is None or not ns.same_release(current.namespaces.get(n))]
        self._install(snapshot)  # then the log line: a write to the server's log can wait
        if released:
            log.info("hotconf: new release of %s (snapshot v%d)", ", ".join(released),
                     snapshot.version)

    def _install(self, snapshot: Snapshot) -> None:
        with self._publish_lock:
            if self._stop.is_set():
                return  # a fetch that finished after stop() publishes nothing
            self._publish_locked(snapshot)

    def _publish_locked(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        try:
            if not self.store.publish(snapshot):
                self._overtake(snapshot)
            if self.store.unwritten is not None:
                self._schedule_rewrite()
        except StoreError as exc:  # e.g. a snapshot larger than the uWSGI cache's blocksize
            if str(exc) != self._store_error:
                log.error("%s", exc)
            self._store_error = str(exc)
        else:
            self._store_error = None
        finally:  # after the store: the release reaches the workers before this file is written
            self.report.published(self._snapshot or snapshot, dict(self._state.ids()))

    def restore_if_missing(self) -> None:
        """The host's copy is gone (the cache dir deleted, the uWSGI cache wiped): publish
        what this poller holds again, so processes that start now find it. Under the publish
        lock, so it is the newest snapshot (never one a release replaced meanwhile), and never
        an overtake: a store that refuses it holds something newer."""
        with self._publish_lock:
            snapshot = self._snapshot
            if snapshot is None or self._stop.is_set() or self.store.holds(snapshot):
                return
            log.warning("hotconf: the shared snapshot of %s was deleted; writing it again",
                        self.settings.instance_key)
            try:
                self.store.publish(snapshot)
            except StoreError:
                pass  # logged when it was first refused
            if self.store.unwritten is not None:
                self._schedule_rewrite()

    def _schedule_rewrite(self) -> None:
        """The disk refused the snapshot: write it again after a backoff, until it takes it
        (without this, the other processes would wait for the next release)."""
        if self._rewrite_timer is not None or self._stop.is_set():
            return
        if self._thread is None:
            return  # not started (a master's load before it forks: no thread there); start()
        delay = self._rewrite_backoff.next_delay()
        timer = threading.Timer(delay, self._rewrite)
        timer.daemon = True
        timer.name = "hotconf-rewrite"
        self._rewrite_timer = timer
        timer.start()

    def _rewrite(self) -> None:
        with self._publish_lock:
            self._rewrite_timer = None
            snapshot = self._snapshot
            if self._stop.is_set() or snapshot is None:
                return
            try:
                self.store.publish(snapshot)
            except StoreError:
                pass  # logged when it was first refused
            if self.store.unwritten is None:
                log.info("hotconf: the local cache holds snapshot v%d again after %d attempt(s)",
                         snapshot.version, self._rewrite_backoff.failures)
                self._rewrite_backoff.reset()
            else:
                self._schedule_rewrite()

    def _overtake(self, snapshot: Snapshot) -> None:
        """The store refused our snapshot as not newer. If it holds other releases (a second
        poller that was ahead in version numbers, e.g. after a partition of the lock), continue
        from its version, so fresh releases are not refused forever. Versions still only move
        forward, and a snapshot with the same releases is never re-published."""
        theirs = self.store.latest()
        if theirs is None or snapshot.newer_than(theirs):
            return  # the write failed (disk full...): nothing to overtake
        if theirs.same_releases(snapshot):
            return
        ahead = Snapshot(snapshot.app_id, snapshot.cluster, snapshot.namespaces,
                         version=self._next_version(theirs), source=snapshot.source)
        log.warning("hotconf: another process published snapshot v%d with other releases; "
                    "publishing ours as v%d (two pollers? check the lock dir is shared)",
                    theirs.version, ahead.version)
        self._snapshot = ahead
        self.store.publish(ahead)

    # -- errors and waiting -------------------------------------------------------------------------
    def _failed(self, exc: ApolloError, doing: str) -> None:
        delay = self._backoff.next_delay()
        self.report.failed(exc, delay)
        self._note_error(exc, suffix=f"; {doing} again in {delay:.1f}s "
                                     f"(attempt {self._backoff.failures})")
        self._wait(delay)

    def _note_error(self, exc: ApolloError, level: int = logging.WARNING, suffix: str = "") -> None:
        self.last_error = exc
        if isinstance(exc, AuthError):
            level = logging.ERROR
        log.log(level, "hotconf: %s%s", exc, suffix)

    def _succeeded(self) -> None:
        self.report.succeeded()
        if self._backoff.failures:
            log.info("hotconf: config service reachable again after %d failed attempt(s)",
                     self._backoff.failures)
        self._backoff.reset()
        self.last_error = None

    def _wait(self, seconds: float) -> None:
        if self._wait_for is not None:
            self._wait_for(seconds)
        else:
            self._stop.wait(seconds)

