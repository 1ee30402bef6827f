"""``manage.py hotconf status|get|dump|metrics``: the ``hotconf`` command with the project's
own Config (``settings.HOTCONF`` over the environment, as the app resolves it: the same app,
cluster, namespaces, secret, cache dir and stale bound), for teams that operate through
manage.py. Exit statuses are the command's (``status``: 0, 5, 1)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, List

from django.core.management.base import BaseCommand

from hotconf import cli
from hotconf.integrations import django as integration

SUBCOMMANDS = ("status", "get", "dump", "metrics")

#: Django's own options, which a user may put after the subcommand (Django has applied them)
DJANGO_OPTIONS = ("--settings", "--pythonpath", "--traceback", "--no-color", "--force-color",
                  "--skip-checks", "--verbosity", "-v")


def cli_argv(subcommand: str, rest: List[str]) -> List[str]:
    """The ``hotconf`` command line: the subcommand and its own arguments, without Django's
    options (``--settings=...`` after the subcommand is Django's, applied already)."""
    argv, skip = [subcommand], False
    for arg in rest:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in DJANGO_OPTIONS:
            skip = "=" not in arg and name in ("--settings", "--pythonpath", "--verbosity", "-v")
            continue
        argv.append(arg)
    return argv


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
        # The app's own Config's options: HOTCONF over the environment, every namespace (the
        # cache and the status rows are found by them), the secret, stale_after...
        resolved = integration.get_config().options
        sys.stdout.flush()
        code = cli.main(cli_argv(options["subcommand"], list(options["rest"])), options=resolved)
        sys.stdout.flush()
        if code:
            sys.exit(code)
