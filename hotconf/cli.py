"""The ``hotconf`` command.

Exit codes: 0 success, 1 failed (refused, no cache, reload impossible), 2 bad usage,
3 config service unreachable, 4 no such key or namespace.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import requests

from ._version import __version__
from .apollo.client import ApolloClient
from .cache import LocalCache
from .election import PollerLock
from .errors import (
    ApolloError,
    FormatError,
    HotconfError,
    NotFoundError,
    ReloadError,
    SettingsError,
    TransportError,
)
from .masking import mask
from .options import Options, Settings, resolve_options
from .snapshot import NamespaceSnapshot

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_MISSING = 0, 1, 2, 3, 4


class CommandError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def _default_server() -> Optional[str]:
    for name in ("APOLLO_CONFIG_SERVICE", "APOLLO_META"):
        value = os.environ.get(name)
        if value:
            return value.split(",")[0].strip()
    return None


# -- serve --------------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from .devserver import DevServer
    from .devserver.directory import DirectoryPublisher

    server = DevServer(args.host, args.port, hold_seconds=args.hold)
    for item in args.access_key or ():
        app, sep, secret = item.partition("=")
        if not sep or not app or not secret:
            raise CommandError(f"--access-key takes APP=SECRET, got {item!r}", EXIT_USAGE)
        server.state.set_secret(app, secret)
    publisher = None
    if args.data:
        publisher = DirectoryPublisher(Path(args.data), server.state)
        publisher.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"hotconf serve: listening on {server.url} (a development server; production uses "
          f"Apollo)", flush=True)
    if publisher is not None:
        print(f"hotconf serve: publishing files under {publisher.root}/APP/CLUSTER/NAMESPACE",
              flush=True)
    stop.wait()
    if publisher is not None:
        publisher.stop()
    server.stop()
    return EXIT_OK


# -- publish ------------------------------------------------------------------------------------------
def _parse_pairs(pairs: Sequence[str]) -> Dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"expected KEY=VALUE, got {pair!r}", EXIT_USAGE)
        values[key] = value
    return values


def cmd_publish(args: argparse.Namespace) -> int:
    from .devserver.properties import parse_properties
    from .formats import format_of

    server = args.server or _default_server()
    if not server:
        raise CommandError("no server: pass --server URL or set APOLLO_CONFIG_SERVICE", EXIT_USAGE)
    base = (f"{server.rstrip('/')}/admin/apps/{args.app}/clusters/{args.cluster}/namespaces/"
            f"{args.namespace}")
    structured = not format_of(args.namespace).is_properties
    if args.file:
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {args.file}: {exc.strerror}", EXIT_USAGE) from None
        body: dict = {"content": text} if structured else {"configurations": parse_properties(text)}
        if args.pairs:
            if structured:
                raise CommandError("KEY=VALUE pairs only go with properties namespaces",
                                   EXIT_USAGE)
            body["configurations"].update(_parse_pairs(args.pairs))
    elif args.content is not None:
        body = {"content": args.content}
    else:
        if structured and args.pairs:
            raise CommandError(f"{args.namespace} is a {format_of(args.namespace).value} "
                               f"namespace: publish it with --file or --content", EXIT_USAGE)
        body = {"configurations": _parse_pairs(args.pairs)}
    gray = bool(args.gray_label or args.gray_ip)
    if gray:
        body.update(labels=args.gray_label or [], ips=args.gray_ip or [])
    try:
        resp = requests.post(base + ("/gray" if gray else "/releases"), json=body, timeout=10)
    except requests.RequestException as exc:
        raise CommandError(f"cannot reach {server}: {exc.__class__.__name__}; is `hotconf serve` "
                           f"running there?", EXIT_UNREACHABLE) from None
    try:
        result = resp.json()
    except ValueError:
        result = {}
    if resp.status_code != 200:
        raise CommandError(f"{server} refused the release (HTTP {resp.status_code}): "
                           f"{result.get('message', resp.text[:200])}")
    if args.json:
        print(json.dumps(result))
    else:
        kind = "gray release" if gray else "release"
        print(f"published {args.app}/{args.cluster}/{result.get('namespaceName', args.namespace)}: "
              f"{kind} {result['releaseKey']} (notification id {result['notificationId']})")
    return EXIT_OK


# -- reading Apollo ---------------------------------------------------------------------------------
def _options(args: argparse.Namespace, **extra: Any) -> Options:
    """The same resolution as ``Config(...)``: flags first, then Apollo's environment."""
    try:
        return resolve_options(app_id=args.app, server=args.server,
                               config_service=args.config_service, cluster=args.cluster,
                               namespaces=args.namespace or None, label=args.label,
                               data_center=args.data_center, cache_dir=args.cache_dir, **extra)
    except SettingsError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def _settings(args: argparse.Namespace) -> Settings:
    # store/poller given: the app's HOTCONF_STORE / HOTCONF_POLLER do not concern these commands
    return _options(args, store="auto", poller="auto").settings


def _shown(args: argparse.Namespace, key: str, value: Optional[str]) -> Optional[str]:
    return value if args.show_secrets else mask(key, value)


def _load_snapshot(args: argparse.Namespace):
    """The namespaces asked for: fetched from the config service, or the local cache."""
    settings = _settings(args)
    if args.offline:
        cache = LocalCache.for_settings(settings)
        snapshot = cache.load()
        if snapshot is None:
            raise CommandError(f"no usable local cache at {cache.path} (namespaces "
                               f"{', '.join(settings.namespaces)}): run without --offline, or "
                               f"pass the same --namespace list as the app")
        return settings, snapshot.namespaces
    client = ApolloClient(settings)
    result = {}
    try:
        for name in settings.namespaces:
            try:
                config = client.fetch_config(name)
            except NotFoundError as exc:
                raise CommandError(str(exc), EXIT_MISSING) from None
            assert config is not None  # None only answers a release key, and we sent none
            try:
                result[name] = NamespaceSnapshot(name, config.configurations, config.release_key)
            except FormatError as exc:
                raise CommandError(f"namespace {name!r}: {exc}") from None
    except TransportError as exc:
        raise CommandError(f"{exc} (try --offline for the local cache)", EXIT_UNREACHABLE) from None
    except ApolloError as exc:
        raise CommandError(str(exc)) from None
    finally:
        client.close()
    return settings, result


def cmd_get(args: argparse.Namespace) -> int:
    args.namespace = [args.namespace_one or "application"]
    _, namespaces = _load_snapshot(args)
    ns = namespaces[args.namespace[0]]
    if args.key not in ns:
        raise CommandError(f"no key {args.key!r} in namespace {ns.name!r} "
                           f"(it has {len(ns)} keys: hotconf dump {ns.name})", EXIT_MISSING)
    value = _shown(args, args.key, ns[args.key])
    if args.json:
        print(json.dumps({"namespace": ns.name, "key": args.key, "value": value,
                          "release_key": ns.release_key}))
    else:
        print(value)
    return EXIT_OK


def cmd_dump(args: argparse.Namespace) -> int:
    args.namespace = args.namespaces or args.namespace
    _, namespaces = _load_snapshot(args)
    if args.json:
        print(json.dumps({name: {"release_key": ns.release_key, "found": ns.found,
                                 "values": {k: _shown(args, k, v) for k, v in ns.items()}}
                          for name, ns in namespaces.items()}, indent=2, ensure_ascii=False))
        return EXIT_OK
    for name, ns in namespaces.items():
        print(f"# {name}  release {ns.release_key or '(none)'}")
        for key, value in ns.items():
            print(f"{key} = {_shown(args, key, value)}")
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    import tempfile

    from .config import Config

    settings = _settings(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Its own poller and a scratch cache: watching never joins or disturbs the host's apps.
    with tempfile.TemporaryDirectory(prefix="hotconf-watch-") as scratch:
        args.cache_dir = scratch
        cfg = Config(options=_options(args, store="memory"))

        def show(event) -> None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            for key, (old, new, kind) in event.changes.items():
                if args.json:
                    print(json.dumps({"time": stamp, "namespace": event.namespace, "key": key,
                                      "type": kind.value, "old": _shown(args, key, old),
                                      "new": _shown(args, key, new),
                                      "release_key": event.release_key}), flush=True)
                else:
                    print(f"{stamp} {event.namespace}:{key} {kind.value} "
                          f"{_shown(args, key, old)!r} -> {_shown(args, key, new)!r}", flush=True)

        cfg.on_change(show)
        try:
            snapshot = cfg.snapshot()
        except HotconfError as exc:
            cfg.stop()
            raise CommandError(str(exc), EXIT_UNREACHABLE) from None
        print(f"hotconf watch: app {settings.app_id!r} cluster {settings.cluster!r}, "
              f"namespaces {', '.join(snapshot.namespaces)}; Ctrl-C to stop", file=sys.stderr,
              flush=True)
        stop.wait()
        cfg.stop()
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    cache = LocalCache.for_settings(settings)
    snapshot = cache.load()
    lock = PollerLock(settings.cache_dir / f"{settings.instance_key}.poller.lock")
    poller = lock.holder_pid()
    others = sorted(p.name for p in settings.cache_dir.glob(f"{settings.app_id}+*.json")
                    if p != cache.path) if settings.cache_dir.is_dir() else []
    info: Dict[str, Any] = {
        "app_id": settings.app_id, "cluster": settings.cluster,
        "namespaces": list(settings.namespaces), "cache_file": str(cache.path),
        "poller_pid": poller,
        "snapshot": None if snapshot is None else {
            "version": snapshot.version, "written_at": snapshot.created_at,
            "age_seconds": round(time.time() - snapshot.created_at, 1),
            "release_keys": snapshot.release_keys,
            "keys": {n: len(ns) for n, ns in snapshot.namespaces.items()},
        },
        "other_cache_files": others,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"app {settings.app_id!r} cluster {settings.cluster!r} namespaces "
              f"{', '.join(settings.namespaces)}")
        print(f"local cache: {cache.path}")
        if snapshot is None:
            print("  (none: nothing has loaded this configuration on this host, or the "
                  "--namespace list differs from the app's)")
        else:
            written = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.created_at))
            print(f"  snapshot v{snapshot.version}, written {written} "
                  f"({info['snapshot']['age_seconds']:.0f} s ago)")
            for name, ns in snapshot.namespaces.items():
                state = f"release {ns.release_key}" if ns.found else "not published"
                print(f"  {name}: {state}, {len(ns)} keys")
        print(f"poller: {'process ' + str(poller) if poller else 'none running on this host'}")
        for name in others:
            print(f"other snapshot of this app here: {name}")
    return EXIT_OK if snapshot is not None else EXIT_FAILED


def cmd_reload(args: argparse.Namespace) -> int:
    from .servers.control import signal_pidfile, write_fifo

    try:
        if args.fifo:
            write_fifo(args.fifo, b"c" if args.chain else b"r")
            kind = "chain reload" if args.chain else "graceful reload"
            print(f"asked the uWSGI master for a {kind} through {args.fifo}")
        else:
            if args.chain:
                raise CommandError("a chain reload goes through the master FIFO: use --fifo PATH "
                                   "--chain (a pidfile can only ask for a graceful reload)",
                                   EXIT_USAGE)
            pid = signal_pidfile(args.pidfile, signal.SIGHUP)
            print(f"sent SIGHUP (graceful reload) to process {pid} from {args.pidfile}")
    except ReloadError as exc:
        raise CommandError(str(exc)) from None
    return EXIT_OK


# -- wiring -------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotconf",
        description="hotconf: a fork-safe Apollo config client, and an Apollo-compatible dev "
                    "server for local work.",
    )
    parser.add_argument("--version", action="version", version=f"hotconf {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run the Apollo-compatible dev server",
        description="Run an Apollo-compatible config service (meta server included) for local "
                    "development, demos and tests. Not for production.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free)")
    serve.add_argument("--hold", type=float, default=60.0, metavar="SECONDS",
                       help="how long a long poll is held before 304 (Apollo: 60)")
    serve.add_argument("--data", metavar="DIR",
                       help="publish DIR/APP/CLUSTER/NAMESPACE files, and again when they change")
    serve.add_argument("--access-key", action="append", metavar="APP=SECRET",
                       help="require signed requests for APP (repeatable)")
    serve.set_defaults(func=cmd_serve)

    pub = sub.add_parser(
        "publish", help="publish a release to a `hotconf serve` dev server",
        description="Publish a namespace release to a hotconf dev server. Properties namespaces "
                    "take KEY=VALUE pairs or a .properties --file; json/yaml/xml/txt namespaces "
                    "take --file or --content.")
    pub.add_argument("namespace", help="namespace, e.g. application or db.yaml")
    pub.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    pub.add_argument("--server", help="dev server URL (default: $APOLLO_CONFIG_SERVICE)")
    pub.add_argument("--app", default=os.environ.get("APP_ID"), required=not os.environ.get(
        "APP_ID"), help="app id (default: $APP_ID)")
    pub.add_argument("--cluster", default=os.environ.get("APOLLO_CLUSTER", "default"))
    pub.add_argument("--file", help="read the release from this file")
    pub.add_argument("--content", help="the whole content of a non-properties namespace")
    pub.add_argument("--gray-label", action="append", metavar="LABEL",
                     help="gray release for clients with this label (repeatable, '*' = all)")
    pub.add_argument("--gray-ip", action="append", metavar="IP",
                     help="gray release for clients with this ip (repeatable, '*' = all)")
    pub.add_argument("--json", action="store_true", help="print the server's answer as JSON")
    pub.set_defaults(func=cmd_publish)

    client = argparse.ArgumentParser(add_help=False)
    group = client.add_argument_group("which configuration (defaults from the environment)")
    group.add_argument("--app", default=None, help="app id (default: $APP_ID)")
    group.add_argument("--server", help="meta server URL(s) (default: $APOLLO_META)")
    group.add_argument("--config-service", help="config service URL(s), no discovery "
                                                "(default: $APOLLO_CONFIG_SERVICE)")
    group.add_argument("--cluster", help="cluster (default: $APOLLO_CLUSTER, $IDC, default)")
    group.add_argument("--label", help="gray-release label (default: $APOLLO_LABEL)")
    group.add_argument("--data-center", help="data center (default: $IDC)")
    group.add_argument("--cache-dir", help="local cache dir (default: $APOLLO_CACHE_DIR)")
    group.add_argument("--show-secrets", action="store_true",
                       help="print values of secret-looking keys (masked by default)")
    group.add_argument("--json", action="store_true", help="machine-readable output")
    secret_note = ("The access-key secret is read from $APOLLO_ACCESS_KEY_SECRET only (a flag "
                   "would show in ps and shell history).")

    get = sub.add_parser("get", parents=[client], help="print one value",
                         description="Print one value, fetched from the config service (or the "
                                     "local cache with --offline). Exit 4 if there is no such "
                                     "key. " + secret_note)
    get.add_argument("key")
    get.add_argument("-n", "--namespace", dest="namespace_one", metavar="NAMESPACE",
                     help="namespace (default: application)")
    get.add_argument("--offline", action="store_true", help="read the local cache instead")
    get.set_defaults(func=cmd_get, namespace=None)

    dump = sub.add_parser("dump", parents=[client], help="print namespaces",
                          description="Print every key of the namespaces (default: application). "
                                      + secret_note)
    dump.add_argument("namespaces", nargs="*", metavar="NAMESPACE")
    dump.add_argument("--offline", action="store_true", help="read the local cache instead")
    dump.set_defaults(func=cmd_dump, namespace=None)

    watch = sub.add_parser("watch", parents=[client], help="print changes as they are released",
                           description="Long-poll and print each change as it is released, "
                                       "until Ctrl-C. Uses its own poller: it never takes over "
                                       "or disturbs the apps on this host. " + secret_note)
    watch.add_argument("-n", "--namespace", action="append",
                       help="namespace (repeatable; default: application)")
    watch.set_defaults(func=cmd_watch)

    status = sub.add_parser("status", parents=[client], help="what this host holds",
                            description="Show the snapshot this host holds (the local cache "
                                        "file): its release keys, age, and which process polls. "
                                        "Pass the app's --namespace list. Exit 1 if there is "
                                        "none.")
    status.add_argument("-n", "--namespace", action="append",
                        help="namespace (repeatable; default: application)")
    status.set_defaults(func=cmd_status)

    reload = sub.add_parser("reload", help="gracefully reload uWSGI or gunicorn",
                            description="Ask a server for a graceful reload: SIGHUP to the "
                                        "process in --pidfile (uWSGI or gunicorn master), or a "
                                        "command to uWSGI's --fifo (master-fifo): 'r' graceful, "
                                        "'c' chain with --chain (zero downtime; needs "
                                        "lazy-apps to load new code or config).")
    target = reload.add_mutually_exclusive_group(required=True)
    target.add_argument("--pidfile", help="the server's pidfile")
    target.add_argument("--fifo", help="uWSGI's master FIFO")
    reload.add_argument("--chain", action="store_true", help="chain reload (uWSGI, --fifo)")
    reload.set_defaults(func=cmd_reload)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    # KEY=VALUE pairs may follow options (`publish app --gray-label x k=v`), which argparse
    # does not take as positionals once subcommands are involved.
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "command", None) == "publish" and not any(
            e.startswith("-") for e in extra):
        args.pairs = list(args.pairs) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    quiet = logging.INFO if args.command == "serve" else logging.WARNING
    logging.basicConfig(level=logging.DEBUG if args.verbose else quiet,
                        format="%(asctime)s %(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except CommandError as exc:
        print(f"hotconf {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
