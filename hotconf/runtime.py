"""Where are we running, and what may this process do? Facts are gathered at the edge
(``detect``); the decisions on them are pure functions, tested on every combination."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Optional, Tuple

POLLER_AUTO, POLLER_MULE, POLLER_NEVER = "auto", "mule", "never"
POLLER_CHOICES = (POLLER_AUTO, POLLER_MULE, POLLER_NEVER)


@dataclass(frozen=True)
class ProcessFacts:
    server: str = "other"              # "uwsgi", "gunicorn" or "other"
    uwsgi_master: bool = False         # the uWSGI master, before it forks workers
    uwsgi_worker: bool = False
    uwsgi_mule: bool = False
    uwsgi_threads: bool = True         # uwsgi.has_threads
    uwsgi_version: str = ""
    uwsgi_lazy: bool = False
    uwsgi_cache: Optional[Tuple[str, int, bool]] = None  # (name, blocksize, bitmap) of "hotconf"
    gunicorn_arbiter: bool = False     # gunicorn's master (the app is imported there with --preload)


def will_fork(facts: ProcessFacts) -> bool:
    """A master that forks workers later must run no thread: a thread holding a lock at fork
    time leaves that lock held forever in the children (they hang)."""
    return facts.uwsgi_master or facts.gunicorn_arbiter


def competes_for_poller(facts: ProcessFacts, poller: str) -> bool:
    """May this process become the host's poller?"""
    if will_fork(facts) or poller == POLLER_NEVER:
        return False
    if poller == POLLER_MULE and facts.server == "uwsgi":
        return facts.uwsgi_mule
    return True


def store_kind(facts: ProcessFacts, requested: str) -> str:
    if requested != "auto":
        return requested
    if facts.server == "uwsgi" and facts.uwsgi_cache is not None:
        return "uwsgi"
    return "file"


def threads_problem(facts: ProcessFacts) -> Optional[str]:
    """The error to log when this uWSGI process cannot run hotconf's threads."""
    if facts.server != "uwsgi" or facts.uwsgi_threads or facts.uwsgi_master:
        return None
    version = f" {facts.uwsgi_version}" if facts.uwsgi_version else ""
    return (f"hotconf: Python threads are disabled in this uWSGI{version}, so hotconf's poller "
            f"and change watcher cannot run and this process would serve stale config. Add "
            f"'enable-threads = true' to the [uwsgi] section (or --enable-threads); uWSGI "
            f"2.0.27 and later enable threads by default")


def parse_cache2(value: object, name: str = "hotconf") -> Optional[Tuple[str, int, bool]]:
    """Find ``cache2 = name=hotconf,items=...,blocksize=...`` in ``uwsgi.opt`` values."""
    values = value if isinstance(value, (list, tuple)) else [value]
    for raw in values:
        text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        if fields.get("name") == name:
            size = fields.get("blocksize", "65536")
            bitmap = fields.get("bitmap", "0") not in ("0", "false", "")
            return name, int(size) if size.isdigit() else 65536, bitmap
    return None


def _opt(uwsgi, key: str):
    try:
        return uwsgi.opt.get(key)
    except Exception:  # noqa: BLE001 - uwsgi.opt is a plain dict; be defensive anyway
        return None


def detect() -> ProcessFacts:
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None:
        try:
            import uwsgi  # type: ignore[import-not-found,no-redef]  # noqa: F401
        except ImportError:
            uwsgi = None
    if uwsgi is not None and hasattr(uwsgi, "worker_id"):
        worker, mule = uwsgi.worker_id(), uwsgi.mule_id()
        master_pid = uwsgi.masterpid()
        version = getattr(uwsgi, "version", b"")
        return ProcessFacts(
            server="uwsgi",
            uwsgi_master=worker == 0 and mule == 0 and master_pid == os.getpid(),
            uwsgi_worker=worker > 0,
            uwsgi_mule=mule > 0,
            uwsgi_threads=bool(getattr(uwsgi, "has_threads", 1)),
            uwsgi_version=version.decode() if isinstance(version, bytes) else str(version),
            uwsgi_lazy=bool(_opt(uwsgi, "lazy-apps") or _opt(uwsgi, "lazy")),
            uwsgi_cache=parse_cache2(_opt(uwsgi, "cache2")),
        )
    if "gunicorn.arbiter" in sys.modules:
        return ProcessFacts(server="gunicorn", gunicorn_arbiter=_is_gunicorn_arbiter())
    return ProcessFacts()


_forked_by_gunicorn = False


def _mark_forked() -> None:
    global _forked_by_gunicorn
    _forked_by_gunicorn = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked)


def _is_gunicorn_arbiter() -> bool:
    """gunicorn's master imports the app only with --preload, before forking. Workers are its
    children: either we saw the fork (hotconf was imported before it), or our parent is a
    gunicorn process (the app was imported after it)."""
    if _forked_by_gunicorn:
        return False
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            parent = fh.read().replace(b"\0", b" ")
    except OSError:
        return False  # cannot tell: behave as a worker rather than never polling
    return b"gunicorn" not in parent
