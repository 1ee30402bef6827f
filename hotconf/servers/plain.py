"""A plain process (a script, the dev server, a one-process container, uvicorn's spawned
workers): no master, no push channel but the cache file, the user's callback as reload."""

from __future__ import annotations

from ..process.platform import Platform


class PlainServer(Platform):
    name = "plain"
