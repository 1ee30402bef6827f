"""The Apollo client: discovery, failover and the two calls the poller makes.

Protocol encoding and parsing live in ``urls``/``responses``; this module only decides which
instance to ask, what a status code means, and how to say so.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from typing import Callable, List, Mapping, Optional, Sequence

from ..errors import (
    ApolloError,
    AuthError,
    HTTPStatusError,
    NotFoundError,
    ProtocolError,
    TransportError,
)
from ..options import Settings
from . import responses, signing, urls
from .transport import HttpTransport, Response, Transport

log = logging.getLogger("hotconf")

CLOCK_SKEW_HINT_SECONDS = 30.0


class ServiceLocator:
    """Which config-service instances to talk to.

    With ``config_service`` URLs the list is fixed. Otherwise the meta servers are asked
    (``/services/config``, each in random order until one answers) at first use and every
    ``refresh_interval``; an empty or failed answer keeps the previous list.
    """

    def __init__(self, settings: Settings, transport: Transport,
                 rng: Optional[random.Random] = None, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._transport = transport
        self._rng = rng or random.Random()
        self._clock = clock
        self._services: List[str] = list(settings.config_services)
        self._refreshed_at: Optional[float] = None
        self._lock = threading.Lock()

    @property
    def discovers(self) -> bool:
        return not self._settings.config_services

    def services(self) -> List[str]:
        """The instances, in a fresh random order (client-side load balancing)."""
        if self.discovers:
            with self._lock:
                stale = (self._refreshed_at is None or
                         self._clock() - self._refreshed_at >= self._settings.refresh_interval)
                if stale or not self._services:
                    self._refresh_locked()
        services = list(self._services)
        self._rng.shuffle(services)
        return services

    def invalidate(self) -> None:
        """Ask the meta servers again at the next call (every instance failed)."""
        with self._lock:
            if self.discovers and self._refreshed_at is not None:
                # Rate limit: at most one discovery a second, whatever the callers do.
                self._refreshed_at = min(self._refreshed_at,
                                         self._clock() - self._settings.refresh_interval + 1.0)

    def _refresh_locked(self) -> None:
        s = self._settings
        metas = list(s.meta_servers)
        self._rng.shuffle(metas)
        errors = []
        self._refreshed_at = self._clock()
        for meta in metas:
            try:
                resp = self._transport.get(
                    meta, urls.services_path(s.app_id, s.ip),
                    timeout=(s.connect_timeout, s.discovery_timeout),
                )
                if resp.status != 200:
                    errors.append(f"{meta}: HTTP {resp.status}")
                    continue
                found = responses.parse_services(resp.body)
            except ApolloError as exc:
                errors.append(str(exc))
                continue
            if found:
                if found != self._services:
                    log.info("hotconf: config services from meta server %s: %s", meta, found)
                self._services = found
                return
            errors.append(f"{meta}: no config service registered")
        if not self._services:
            raise TransportError(
                "no config service found through meta server(s) "
                + ", ".join(s.meta_servers) + ": " + "; ".join(errors)
            )
        log.warning("hotconf: meta server refresh failed (%s); keeping %s",
                    "; ".join(errors), self._services)


class ApolloClient:
    def __init__(self, settings: Settings, transport: Optional[Transport] = None,
                 rng: Optional[random.Random] = None):
        self.settings = settings
        self.transport = transport or HttpTransport()
        self._rng = rng or random.Random()
        self.locator = ServiceLocator(settings, self.transport, self._rng)
        self._poll_service: Optional[str] = None

    # -- signing -------------------------------------------------------------------------------
    def _signer(self):
        secret = self.settings.secret
        if not secret:
            return None
        app_id = self.settings.app_id
        return lambda path_with_query: signing.auth_headers(app_id, secret, path_with_query)

    # -- status handling -----------------------------------------------------------------------
    def _raise_for_status(self, resp: Response, what: str) -> None:
        s = self.settings
        hint = responses.error_summary(resp.body)
        if resp.status == 404:
            raise NotFoundError(
                404, resp.url,
                f"{what}: not found (404) at {resp.url}. The namespace has no release for app "
                f"{s.app_id!r} cluster {s.cluster!r}: publish it in Apollo, or check app_id, "
                f"cluster and namespace (and that the URL is an Apollo config service)",
                hint,
            )
        if resp.status == 401:
            raise AuthError(401, resp.url, self._auth_message(resp, what, hint), hint)
        if resp.status == 400 and "InvalidAppId" in hint:
            raise AuthError(400, resp.url,
                            f"{what}: the config service rejected app id {s.app_id!r} "
                            f"(400 InvalidAppId)", hint)
        raise HTTPStatusError(
            resp.status, resp.url,
            f"{what}: HTTP {resp.status} from {resp.url}" + (f" ({hint})" if hint else ""), hint,
        )

    def _auth_message(self, resp: Response, what: str, hint: str) -> str:
        app = self.settings.app_id
        if not self.settings.secret:
            # Apollo answers an unsigned request "RequestTimeTooSkewed" (no Timestamp header).
            return (f"{what}: app {app!r} requires an access key (401): set "
                    f"APOLLO_ACCESS_KEY_SECRET or pass secret=...")
        skew = _clock_skew(resp.headers.get("Date"))
        if "TooSkewed" in hint or (skew is not None and abs(skew) > CLOCK_SKEW_HINT_SECONDS):
            measured = (f"; the server's Date header is {skew:+.0f} s from this host's clock"
                        if skew is not None else "")
            return (f"{what}: access-key check failed (401 RequestTimeTooSkewed): the request "
                    f"timestamp is more than 60 s from the config service's clock{measured}. "
                    f"Sync this host's clock (NTP)")
        return (f"{what}: access-key signature rejected (401 Unauthorized) for app {app!r}: "
                f"check the secret (APOLLO_ACCESS_KEY_SECRET) against the access key enabled in "
                f"the Apollo portal")

    # -- calls ---------------------------------------------------------------------------------
    def fetch_config(
        self,
        namespace: str,
        *,
        release_key: Optional[str] = None,
        messages: Optional[Mapping[str, int]] = None,
        previous: Optional[Mapping[str, str]] = None,
        prefer: Optional[str] = None,
    ) -> Optional[responses.ApolloConfig]:
        """``/configs``: the release, or None when ``release_key`` is still current (304).

        Instances are tried in turn on connection errors and 5xx; 404 and 401 are final.
        """
        s = self.settings
        path = urls.configs_path(
            s.app_id, s.cluster, namespace, release_key=release_key, ip=s.ip, label=s.label,
            data_center=s.data_center, messages=messages,
        )
        services = self.locator.services()
        if prefer in services:
            services.remove(prefer)
            services.insert(0, prefer)
        what = f"loading namespace {namespace!r}"
        last: Optional[ApolloError] = None
        for base in services:
            try:
                resp = self.transport.get(base, path, timeout=(s.connect_timeout, s.fetch_timeout),
                                          sign=self._signer())
                if resp.status == 304:
                    return None
                if resp.status == 200:
                    config = responses.parse_config(resp.body, previous)
                    if not urls.same_namespace(config.namespace_name, namespace) or \
                            config.app_id.lower() != s.app_id.lower():
                        raise ProtocolError(
                            f"{what}: the answer is for app {config.app_id!r} namespace "
                            f"{config.namespace_name!r} (a proxy or cache in between mixing "
                            f"answers?)")
                    return config
                self._raise_for_status(resp, what)
            except (NotFoundError, AuthError):
                raise
            except ApolloError as exc:
                last = exc
                log.debug("hotconf: %s from %s failed: %s", what, base, exc)
        self.locator.invalidate()
        assert last is not None
        raise last

    def poll(self, ids: Sequence[tuple]) -> List[responses.Notification]:
        """One long poll. [] when the server's hold ran out (304): no change, not an error."""
        s = self.settings
        path = urls.notifications_path(s.app_id, s.cluster, ids, data_center=s.data_center,
                                       ip=s.ip)
        services = self.locator.services()
        base = self._poll_service if self._poll_service in services else services[0]
        self._poll_service = base
        try:
            resp = self.transport.get(base, path, timeout=(s.connect_timeout, s.poll_timeout),
                                      sign=self._signer())
            if resp.status == 304:
                if self._rng.random() < 0.5:  # as Java: spread long polls over instances
                    self._poll_service = None
                return []
            if resp.status != 200:
                self._raise_for_status(resp, "long polling /notifications/v2")
            return responses.parse_notifications(resp.body)
        except ApolloError:
            self._poll_service = None
            self.locator.invalidate()
            raise

    @property
    def last_poll_service(self) -> Optional[str]:
        return self._poll_service

    def close(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        """End the request in flight now, if the transport can (``HttpTransport`` can)."""
        abort = getattr(self.transport, "abort", None)
        if abort is not None:
            abort()


def _clock_skew(date_header: Optional[str]) -> Optional[float]:
    """Seconds the server's clock is ahead of ours, from its Date header (1 s resolution)."""
    if not date_header:
        return None
    try:
        server = email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return server - time.time()

