"""The ``hotconf`` command.

Exit codes: 0 success, 1 the server refused or failed, 2 bad usage, 3 server unreachable.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import requests

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


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
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
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
