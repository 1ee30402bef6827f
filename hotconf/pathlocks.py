"""One ``threading.Lock`` per file path in this process, shared by everything that writes that
file (POSIX record locks do not exclude the threads of one process from each other).

A child forked while a parent's thread held one would find it locked for good: children start
with a registry of their own.
"""

from __future__ import annotations

import os
import threading
from typing import Dict, Union

_LOCKS: Dict[str, threading.Lock] = {}
_REGISTRY = threading.Lock()


def lock_for(path: Union[str, os.PathLike[str]]) -> threading.Lock:
    with _REGISTRY:
        return _LOCKS.setdefault(os.fspath(path), threading.Lock())


def _reset_in_child() -> None:
    global _REGISTRY
    _REGISTRY = threading.Lock()
    _LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
