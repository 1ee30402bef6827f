"""FastAPI integration: typed settings as a dependency, and the lifespan.

``Depends(settings(cfg, Service, prefix="svc"))`` hands a view the live bound model
(``cfg.bind``, see the README's "Typed settings"): bound once per process, at the first request
that asks for it, on a thread (binding reads and validates the current values, and arms hotconf
if the lifespan has not), never on the event loop and never per request. Every later request
gets the same object, which follows releases in place.

``lifespan`` is ``hotconf.integrations.asyncio.lifespan``, here for one import. Nothing from
fastapi is imported: a dependency is a callable, ``Depends`` is the app's.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Generic, Optional, Type, TypeVar

from ..config import DEFAULT_NAMESPACE, Config
from .asyncio import Lifespan, lifespan

M = TypeVar("M")

__all__ = ["Lifespan", "SettingsDependency", "lifespan", "settings"]


class SettingsDependency(Generic[M]):
    """The dependency ``settings()`` returns: ``await dependency()`` is the live bound model."""

    def __init__(self, cfg: Config, model: Type[M], namespace: str = DEFAULT_NAMESPACE,
                 prefix: Optional[str] = None):
        self.cfg, self.model, self.namespace, self.prefix = cfg, model, namespace, prefix
        self._live: Optional[M] = None
        self._lock = threading.Lock()

    def bind(self) -> M:
        """Bind now (once; later calls return the same object). Blocking: call it off the loop
        or at import; ``InvalidValuesError`` if the current values do not validate."""
        with self._lock:
            if self._live is None:
                self._live = self.cfg.bind(self.model, self.namespace, self.prefix)
            return self._live

    async def __call__(self) -> M:
        live = self._live
        if live is None:
            live = await asyncio.get_running_loop().run_in_executor(None, self.bind)
        return live

    def __repr__(self) -> str:
        return f"settings({self.model.__qualname__}, prefix={self.prefix!r})"


def settings(cfg: Config, model: Type[M], *, namespace: str = DEFAULT_NAMESPACE,
             prefix: Optional[str] = None) -> SettingsDependency[M]:
    """A FastAPI dependency for ``cfg.bind(model, namespace, prefix)``:
    ``def view(svc: Service = Depends(settings(cfg, Service, prefix="svc")))``. Create it once
    (at import), not per request: it holds the binding."""
    return SettingsDependency(cfg, model, namespace, prefix)
