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
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import requests

from ._version import __version__
from .apollo.client import ApolloClient
from .cache import LocalCache
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
from .registry import read_host
from .snapshot import NamespaceSnapshot
from .status import STALE_AFTER, HostStatus, ago, duration

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
    """The same resolution as ``Config(...)``: flags first, then Apollo's environment; or the
    app's own options, resolved already (``main(options=...)``: ``manage.py hotconf``)."""
    preset: Optional[Options] = getattr(args, "preset", None)
    if preset is not None:
        wanted = getattr(args, "namespace", None)
        if wanted and not getattr(args, "offline", False):  # fetch only what is asked
            return replace(preset, settings=replace(preset.settings, namespaces=tuple(wanted)))
        return preset  # the local cache is the app's: found by its whole namespace list
    try:
        return resolve_options(app_id=args.app, server=args.server,
                               config_service=args.config_service, cluster=args.cluster,
                               namespaces=args.namespace or None, label=args.label,
                               data_center=args.data_center, cache_dir=args.cache_dir,
                               ip=getattr(args, "ip", None), **extra)
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
    if args.namespace[0] not in namespaces:
        raise CommandError(f"namespace {args.namespace[0]!r} is not one of the app's "
                           f"({', '.join(namespaces)})", EXIT_MISSING)
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
    if args.namespaces:  # from the app's cache, only those asked for
        namespaces = {n: ns for n, ns in namespaces.items() if n in args.namespaces}
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


def _host_view(settings: Settings, stale_after: Optional[float]) -> HostStatus:
    try:
        view = read_host(settings, stale_after)
        if view.poller is None and view.needs_poller:
            time.sleep(1.0)  # a takeover takes tens of ms: do not report one as "no poller"
            view = read_host(settings, stale_after)
    except PermissionError as exc:
        raise CommandError(str(exc.strerror or exc)) from None
    return view


def _other_keys(settings: Settings) -> List[str]:
    """This app's other configurations in the cache dir (another namespace list, label, ip;
    not this one's under an earlier hotconf version, which this version cannot show)."""
    mine = {settings.instance_key, *settings.earlier_instance_keys}
    try:
        return sorted(key for key in (p.name[:-len(".procs")] for p in settings.cache_dir.glob(
            f"{settings.app_id}+*.procs")) if key not in mine)
    except OSError:
        return []


def status_document(settings: Settings, view: HostStatus) -> Dict[str, Any]:
    """``hotconf status --json`` (the schema is in the README)."""
    now = view.now
    head, poller = view.head, view.poller
    return {
        "app_id": settings.app_id, "cluster": settings.cluster,
        "namespaces": list(settings.namespaces),
        "cache_file": str(LocalCache.for_settings(settings).path),
        "now": now, "stale_after": view.stale_after,
        "host": None if head is None else {
            "version": head.version, "published_at": head.published_at,
            "age_seconds": round(now - head.published_at, 1), "releases": dict(head.releases)},
        "poller": None if poller is None else {
            "pid": poller.pid, "config_service": poller.config_service,
            "since": poller.since or None, "last_success": poller.last_success,
            "last_poll": poller.last_poll, "last_fetch": poller.last_fetch,
            "error": poller.error, "error_kind": poller.error_kind,
            "failing_since": poller.failing_since, "failing": view.poller_failing,
            "backoff_seconds": poller.backoff_seconds,
            "notifications": dict(poller.notifications), "errors": dict(poller.errors)},
        "pending_reload": None if view.pending_reload is None else {
            "summary": view.pending_reload.summary, "due_at": view.pending_reload.due},
        "processes": [{
            "pid": r.record.pid, "role": r.record.role, "server": r.record.server,
            "worker": r.record.worker, "mule": r.record.mule, "version": r.record.version,
            "releases": dict(r.record.releases), "applied_at": r.record.applied_at,
            "last_check": r.record.last_check, "current": r.current,
            "behind_seconds": None if r.behind_for is None else round(r.behind_for, 1),
            "stale": r.stale, "hotconf_version": r.record.hotconf_version,
            "dependents": [{**d.to_dict(), "failing": d in r.failing}
                           for d in r.record.dependents],
        } for r in view.rows],
        "problems": view.problems,
        "other_keys": _other_keys(settings) if not view.rows else [],
        "exit_status": view.exit_status,
    }


def _releases_text(releases: Dict[str, Optional[str]]) -> str:
    return ", ".join(f"{n}@{k}" if k else f"{n} (none)" for n, k in releases.items()) or "-"


def _print_status(settings: Settings, view: HostStatus) -> None:
    now = view.now
    print(f"app {settings.app_id!r} cluster {settings.cluster!r} namespaces "
          f"{', '.join(settings.namespaces)}")
    head = view.head
    if head is None:
        print(f"host: no snapshot at {LocalCache.for_settings(settings).path} (none: nothing has "
              f"loaded this configuration on this host, or the --namespace list differs from "
              f"the app's)")
    else:
        print(f"host: snapshot v{head.version}, published {ago(now, head.published_at)}")
        for name, key in head.releases.items():
            print(f"  {name}: {'release ' + key if key else 'not published'}")
    poller = view.poller
    if poller is None:
        print("poller: none running on this host")
    else:
        where = f", {poller.config_service}" if poller.config_service else ""
        if poller.failing_since is not None:
            state = (f"{'FAILING' if view.poller_failing else 'failing'} for "
                     f"{duration(now, poller.failing_since)}: {poller.error}"
                     + (f" (next attempt in {poller.backoff_seconds:.0f} s)"
                        if poller.backoff_seconds else ""))
        else:
            state = f"last success {ago(now, poller.last_success)}"
        print(f"poller: process {poller.pid}{where}, {state}")
    if view.pending_reload is not None:
        due = view.pending_reload.due - now
        when = f"due in {due:.0f} s" if due > 0 else "due now"
        print(f"pending reload: {view.pending_reload.summary} ({when})")
    if view.rows:
        print(f"{'PID':>8}  {'ROLE':<7} {'WORKER':<7} {'APPLIED':>11}  {'CHECKED':>11}  SERVES")
    for row in view.rows:
        r = row.record
        worker = f"mule {r.mule}" if r.mule else (str(r.worker) if r.worker else "-")
        flag = (f"  STALE (behind {row.behind_for:.0f} s)" if row.stale else
                f"  behind {row.behind_for:.0f} s" if row.behind_for is not None else "")
        print(f"{r.pid:>8}  {r.role:<7} {worker:<7} {ago(now, r.applied_at):>11}  "
              f"{ago(now, r.last_check):>11}  {_releases_text(dict(r.releases))}{flag}")
        for dep in r.dependents:
            if dep.failing_since is None and dep.building_since is not None:
                state = f"building for {duration(now, dep.building_since)}"
            elif dep.failing_since is None:
                state = f"built {ago(now, dep.built_at)}, {dep.builds} build(s)"
            else:
                failing = "FAILING" if dep in row.failing else "failing"
                state = (f"{failing} for {duration(now, dep.failing_since)} "
                         f"({', '.join(dep.failed_keys)}): {dep.error}")
            print(f"{'':>8}  {dep.kind} {dep.name}: {state}")
    for problem in view.problems:
        print(f"problem: {problem}")
    if not view.rows:
        for key in _other_keys(settings):
            print(f"other configuration of this app here: {key} (pass the app's --namespace "
                  f"list, --label and --ip)")


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    while True:
        view = _host_view(settings, args.stale_after)
        if args.watch and not args.json:
            print("\033[H\033[J", end="")
        if args.json:
            print(json.dumps(status_document(settings, view), indent=2))
        else:
            _print_status(settings, view)
        if not args.watch:
            return view.exit_status
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return view.exit_status


def cmd_metrics(args: argparse.Namespace) -> int:
    from .metrics import render

    settings = _settings(args)
    try:
        sys.stdout.write(render(read_host(settings, args.stale_after)).decode("utf-8"))
    except PermissionError as exc:
        raise CommandError(str(exc.strerror or exc)) from None
    except HotconfError as exc:
        raise CommandError(str(exc)) from None
    return EXIT_OK


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
def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


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
    group.add_argument("--ip", help="the ip the app passes as Config(ip=...), for gray rules")
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

    host = argparse.ArgumentParser(add_help=False)  # what status and metrics share
    host.add_argument("-n", "--namespace", action="append",
                      help="namespace (repeatable; default: application)")
    host.add_argument("--stale-after", type=_seconds, default=None, metavar="SECONDS",
                      help=f"the bound for STALE processes and a failing poller (default "
                           f"{STALE_AFTER:g})")

    status = sub.add_parser("status", parents=[client, host], help="what every process serves",
                            description="Show the snapshot this host holds, the poller's "
                                        "health, and one row per process with the releases it "
                                        "serves; STALE where a process serves an older release "
                                        "than the host's for longer than --stale-after. Pass "
                                        "the app's --namespace list. Exit 0 if all is current, "
                                        "5 if a process is stale or the poller has failed for "
                                        "longer than --stale-after (a health probe), 1 if "
                                        "no process on this host serves it.")
    status.add_argument("--watch", type=_seconds, nargs="?", const=2.0, default=None,
                        metavar="SECONDS", help="refresh every SECONDS (default 2) until Ctrl-C")
    status.set_defaults(func=cmd_status)

    metrics = sub.add_parser("metrics", parents=[client, host],
                             help="host-wide Prometheus metrics",
                             description="Print this host's metrics for the app in the "
                                         "Prometheus text format (for node_exporter's textfile "
                                         "collector). Needs prometheus_client: pip install "
                                         "'hotconf[metrics]'.")
    metrics.set_defaults(func=cmd_metrics)

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


def main(argv: Optional[List[str]] = None, options: Optional[Options] = None) -> int:
    """The ``hotconf`` command; with ``options`` (an app's, resolved) the commands that read a
    configuration read that one and take no flags naming another (``manage.py hotconf``)."""
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
    args.preset = options
    try:
        return args.func(args)
    except CommandError as exc:
        print(f"hotconf {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
