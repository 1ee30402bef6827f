"""Stores (I/O edges): where the poller publishes snapshots and every process finds them.

Every store has one interface (``base.Store``): ``publish`` (versions only move forward),
``latest``, a cheap ``token``, ``watch`` for pushes from other processes. A store owns its
fallback: ``LayeredStore`` puts a fast store (memory, the uWSGI cache) in front of the local
cache file, so the code that uses a store never asks which kind it has.

May import: the pure core (snapshot, options, errors) and the local cache. Knows no server:
the uWSGI cache store is handed the uWSGI API and its push channel by ``servers.uwsgi``.
"""

from __future__ import annotations

from ..cache import LocalCache
from ..errors import SettingsError
from .base import Store
from .file import FileStore
from .front import FrontCache, front_dir
from .layered import LayeredStore
from .memory import MemoryStore

LOCAL_KINDS = ("file", "memory")


def open_local_store(kind: str, cache: LocalCache, write_behind: bool = True) -> Store:
    """The stores any process can have: ``"file"``, shared with the host through a copy of
    the cache in memory (``front.py``: /dev/shm) with the cache file written behind it, or
    through the cache file alone where there is no such directory; ``"memory"``, this process
    only, with the cache file written behind it. ``write_behind=False``: the cache file is
    written by ``publish`` itself, on the caller's thread (a master that will fork)."""
    if kind == "file":
        directory = front_dir(cache.dir)
        if directory is None:
            return FileStore(cache)
        return LayeredStore(FileStore(FrontCache(directory, cache)), cache, watch_file=True,
                            write_behind=write_behind)
    if kind == "memory":
        return LayeredStore(MemoryStore(), cache, watch_file=False, write_behind=write_behind)
    raise SettingsError(f"store {kind!r} is not available in this process: use one of "
                        f"{', '.join(LOCAL_KINDS)} (store='uwsgi' works inside uWSGI, with "
                        f"'cache2 = name=hotconf,items=16,blocksize=1048576' in [uwsgi])")


__all__ = ["FileStore", "LayeredStore", "MemoryStore", "Store", "open_local_store"]
