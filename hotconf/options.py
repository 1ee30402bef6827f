"""Options (pure): what a Config is asked to do, resolved once.

``Settings`` says which configuration to fetch and how (Apollo's own knobs: app, cluster,
namespaces, servers, timeouts); ``Options`` adds what hotconf does with it in a process (store,
poller placement, reload). ``resolve_options`` is the one place both are resolved, for
``Config`` and the CLI alike: an explicit argument wins over the environment variables Apollo
users already set, the environment over the defaults.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

from .errors import SettingsError
from .reload.policy import ReloadPolicy, ReloadRequest
from .runtime import POLLER_CHOICES

# Apollo's own pattern for app ids, clusters and namespaces.
NAME_PATTERN = re.compile(r"^[0-9a-zA-Z_-]+[0-9a-zA-Z_.-]*$")

ENV_APP_ID = "APP_ID"
ENV_META = "APOLLO_META"
ENV_CONFIG_SERVICE = "APOLLO_CONFIG_SERVICE"
ENV_CLUSTER = "APOLLO_CLUSTER"
ENV_IDC = "IDC"
ENV_LABEL = "APOLLO_LABEL"
ENV_SECRET = "APOLLO_ACCESS_KEY_SECRET"
ENV_CACHE_DIR = "APOLLO_CACHE_DIR"
ENV_STORE = "HOTCONF_STORE"
ENV_POLLER = "HOTCONF_POLLER"

STORES = ("auto", "uwsgi", "file", "memory")
RELOADS = ("auto", "uwsgi", "gunicorn", "celery", "callback", "none")

URLs = Union[str, Sequence[str], None]


def _split_urls(value: URLs) -> Tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    urls = tuple(u.strip().rstrip("/") for u in items if u and u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise SettingsError(
                f"server URL {url!r} must start with http:// or https:// "
                f"(for example http://127.0.0.1:8080)"
            )
    return urls


def private_dir(path: Path) -> Path:
    """Cache files never sit in a world-writable directory (another user could plant or read
    files there): for one such as /tmp, a per-user 0700 subdirectory is used instead."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return path  # created later by hotconf itself, 0700
    if mode & 0o002:
        return path / f"hotconf-{os.getuid()}"
    return path


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hotconf"


#: The layout of the local cache and the shared store. 2: an index and one part per namespace;
#: 3: parts as the config service sent them, and small releases' changes in the index (a
#: process of generation 2 that took over polling would name such parts wrongly: the
#: generations keep apart, each with its own poller, during an upgrade or a rollback).
CACHE_GENERATION = "3"
#: The generations before, newest first ("": hotconf 0.1's one-document cache): their caches
#: of the same config are read while this generation's has nothing.
EARLIER_GENERATIONS = ("2", "")


@dataclass(frozen=True)
class Settings:
    app_id: str
    meta_servers: Tuple[str, ...] = ()
    config_services: Tuple[str, ...] = ()
    cluster: str = "default"
    namespaces: Tuple[str, ...] = ("application",)
    secret: Optional[str] = field(default=None, repr=False)
    label: Optional[str] = None
    ip: Optional[str] = None
    data_center: Optional[str] = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    connect_timeout: float = 1.0
    fetch_timeout: float = 5.0
    poll_timeout: float = 90.0
    discovery_timeout: float = 1.0
    backoff_initial: float = 1.0
    backoff_max: float = 120.0
    refresh_interval: float = 300.0
    stale_after: float = 10.0  # behind the host longer than this: say so (log, status)

    @property
    def instance_key(self) -> str:
        """Names this configuration's files and locks on a host: ``{app}+{cluster}+{digest}``.

        Processes share one poller and one snapshot only when they would fetch the same thing:
        the digest covers the namespaces, label, ip and data center. Not the server URLs: a
        changed meta-server list must not orphan the last good cache (Java's ignores them too).
        """
        return self._key(CACHE_GENERATION)

    @property
    def earlier_instance_keys(self) -> Tuple[str, ...]:
        """The keys earlier hotconf versions used, newest first (their caches are read while
        ours is empty)."""
        return tuple(self._key(generation) for generation in EARLIER_GENERATIONS)

    def _key(self, generation: str) -> str:
        # The cache's layout generation is part of the identity: during a rolling upgrade,
        # processes of two hotconf versions on one host each elect their own poller and keep
        # their own cache, instead of reading a layout they do not know.
        identity = "\n".join([
            ",".join(sorted(self.namespaces)), self.label or "", self.ip or "",
            self.data_center or "",
        ] + ([generation] if generation else []))
        digest = hashlib.sha1(identity.encode("utf-8")).hexdigest()[:8]
        return f"{self.app_id}+{self.cluster}+{digest}"

    @property
    def servers_description(self) -> str:
        if self.config_services:
            return "config service " + ", ".join(self.config_services)
        return "meta server " + ", ".join(self.meta_servers)

    @classmethod
    def resolve(
        cls,
        *,
        app_id: Optional[str] = None,
        server: URLs = None,
        config_service: URLs = None,
        cluster: Optional[str] = None,
        namespaces: Union[str, Sequence[str], None] = None,
        secret: Optional[str] = None,
        label: Optional[str] = None,
        ip: Optional[str] = None,
        data_center: Optional[str] = None,
        cache_dir: Union[str, os.PathLike[str], None] = None,
        environ: Optional[Mapping[str, str]] = None,
        **tuning: float,
    ) -> Settings:
        """An explicit argument wins over the environment; the environment over defaults."""
        env = os.environ if environ is None else environ

        def pick(explicit: Optional[str], name: str) -> Optional[str]:
            return explicit if explicit not in (None, "") else (env.get(name) or None)

        app = pick(app_id, ENV_APP_ID)
        if not app:
            raise SettingsError("app_id is required: pass Config(app_id=...) or set APP_ID")
        # An explicit server beats APOLLO_CONFIG_SERVICE from the environment, and vice versa.
        explicit_meta, explicit_cs = _split_urls(server), _split_urls(config_service)
        if explicit_meta or explicit_cs:
            meta, services = explicit_meta, explicit_cs
        else:
            meta = _split_urls(env.get(ENV_META))
            services = _split_urls(env.get(ENV_CONFIG_SERVICE))
        if not meta and not services:
            raise SettingsError(
                "no Apollo server: pass server='http://meta:8080' (meta server) or "
                "config_service='http://configservice:8080', or set APOLLO_META / "
                "APOLLO_CONFIG_SERVICE"
            )
        idc = pick(data_center, ENV_IDC)
        # Java precedence: explicit cluster, else the data centre's cluster, else "default".
        clus = pick(cluster, ENV_CLUSTER) or idc or "default"
        if isinstance(namespaces, str):
            names = tuple(n.strip() for n in namespaces.split(",") if n.strip())
        else:
            names = tuple(namespaces) if namespaces else ("application",)
        for kind, value in [("app_id", app), ("cluster", clus)] + [("namespace", n) for n in names]:
            if not NAME_PATTERN.match(value):
                raise SettingsError(
                    f"{kind} {value!r} is not a valid Apollo name (letters, digits, '_', '-', '.')"
                )
        if len(set(names)) != len(names):
            raise SettingsError(f"namespaces {list(names)} name one namespace twice")
        cache = pick(os.fspath(cache_dir) if cache_dir is not None else None, ENV_CACHE_DIR)
        unknown = set(tuning) - {f for f in cls.__dataclass_fields__ if f.endswith(
            ("_timeout", "_initial", "_max", "_interval", "_after"))}
        if unknown:
            raise SettingsError(f"unknown settings: {sorted(unknown)}")
        for knob, seconds in tuning.items():
            if not isinstance(seconds, (int, float)) or seconds <= 0:
                raise SettingsError(f"{knob} must be a positive number of seconds, got {seconds!r}")
        return cls(
            app_id=app,
            meta_servers=meta if not services else (),
            config_services=services,
            cluster=clus,
            namespaces=names,
            secret=pick(secret, ENV_SECRET),
            label=pick(label, ENV_LABEL),
            ip=ip or None,
            data_center=idc,
            cache_dir=private_dir(Path(cache).expanduser() if cache else default_cache_dir()),
            **{k: float(v) for k, v in tuning.items()},
        )


@dataclass(frozen=True)
class Options:
    """Everything a Config was asked for, resolved and validated (see ``resolve_options``)."""

    settings: Settings
    store: str = "auto"
    poller: str = "auto"
    reload: str = "auto"
    reload_policy: ReloadPolicy = field(default_factory=ReloadPolicy)
    on_reload: Optional[Callable[[ReloadRequest], None]] = None


def resolve_options(
    *,
    store: Optional[str] = None,
    poller: Optional[str] = None,
    reload_on: Sequence[str] = (),
    on_reload: Optional[Callable[[ReloadRequest], None]] = None,
    reload: str = "auto",
    reload_wait: Tuple[float, float] = (2.0, 10.0),
    reload_splay: float = 0.0,
    reload_min_interval: float = 30.0,
    environ: Optional[Mapping[str, str]] = None,
    **settings: Any,
) -> Options:
    """``settings`` are ``Settings.resolve``'s arguments (app_id, server, cluster, ...)."""
    env = os.environ if environ is None else environ
    resolved = Settings.resolve(environ=environ, **settings)
    store_kind = store or env.get(ENV_STORE) or "auto"
    poller_mode = poller or env.get(ENV_POLLER) or "auto"
    if store_kind not in STORES:
        raise SettingsError(f"store={store_kind!r}: use one of {', '.join(STORES)}")
    if poller_mode not in POLLER_CHOICES:
        raise SettingsError(f"poller={poller_mode!r}: use one of {', '.join(POLLER_CHOICES)}")
    try:
        patterns = (reload_on,) if isinstance(reload_on, str) else tuple(reload_on)
        policy = ReloadPolicy(patterns, reload_wait[0], reload_wait[1], reload_splay,
                              reload_min_interval)
    except (ValueError, IndexError, TypeError) as exc:
        raise SettingsError(f"reload settings: {exc}") from None
    if reload not in RELOADS:
        raise SettingsError(f"reload={reload!r}: use one of {', '.join(RELOADS)}")
    if reload == "callback" and on_reload is None:
        raise SettingsError("reload='callback' needs on_reload=<callable>")
    return Options(resolved, store_kind, poller_mode, reload, policy, on_reload)
