"""``manage.py hotconf status|get|dump|metrics``: the ``hotconf`` command with the project's
``settings.HOTCONF`` (the same app, cluster, namespaces and cache dir as the running app), for
teams that operate through manage.py. Exit statuses are the command's (``status``: 0, 5, 1)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List

from django.core.management.base import BaseCommand

from hotconf import cli
from hotconf.integrations import django as integration

SUBCOMMANDS = ("status", "get", "dump", "metrics")

#: settings.HOTCONF keys -> the command's flags (the others do not concern these commands)
FLAGS = {"app_id": "--app", "server": "--server", "config_service": "--config-service",
         "cluster": "--cluster", "label": "--label", "data_center": "--data-center",
         "ip": "--ip", "cache_dir": "--cache-dir"}


def cli_argv(subcommand: str, hotconf: Dict[str, Any], rest: List[str]) -> List[str]:
    """The ``hotconf`` command line for ``subcommand`` under these settings; flags given by
    hand (``rest``) win."""
    given = {arg.split("=", 1)[0] for arg in rest if arg.startswith("-")}
    argv = [subcommand]
    for key, flag in FLAGS.items():
        value = hotconf.get(key)
        if value is None or flag in given:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        argv += [flag, str(value)]
    namespaces = hotconf.get("namespaces")
    if isinstance(namespaces, str):
        namespaces = [n.strip() for n in namespaces.split(",") if n.strip()]
    if namespaces and subcommand in ("status", "metrics") and not given & {"-n", "--namespace"}:
        for name in namespaces:  # the app's list: it names the configuration on this host
            argv += ["--namespace", name]
    if namespaces and subcommand == "dump" and not [a for a in rest if not a.startswith("-")]:
        argv += list(namespaces)
    return argv + rest


class Command(BaseCommand):
    help = ("Run `hotconf status|get|dump|metrics` with this project's settings.HOTCONF "
            "(see `hotconf --help`).")
    # No system checks: they import the URLconf, and an app that reads its config there
    # would arm hotconf in this one-shot process (a row of its own in the status it prints).
    requires_system_checks: List[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("subcommand", choices=SUBCOMMANDS)
        parser.add_argument("rest", nargs=argparse.REMAINDER,
                            help="the command's own arguments, e.g. `get db.url -n db.yaml`")

    def handle(self, *args: Any, **options: Any) -> None:
        hotconf = integration.hotconf_settings()
        if hotconf.get("secret") and "APOLLO_ACCESS_KEY_SECRET" not in os.environ:
            os.environ["APOLLO_ACCESS_KEY_SECRET"] = str(hotconf["secret"])
        sys.stdout.flush()
        code = cli.main(cli_argv(options["subcommand"], hotconf, list(options["rest"])))
        sys.stdout.flush()
        if code:
            sys.exit(code)
