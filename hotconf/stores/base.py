"""The store interface shared by the memory, file and uWSGI-cache stores."""

from __future__ import annotations

from typing import Callable, Optional

from ..snapshot import Snapshot

try:
    from typing import Protocol
except ImportError:  # pragma: no cover - Python 3.7
    Protocol = object  # type: ignore[assignment]


class SnapshotStore(Protocol):
    def publish(self, snapshot: Snapshot) -> bool:
        """Make ``snapshot`` the current one if it is newer; False if it was not."""

    def latest(self) -> Optional[Snapshot]:
        """The current snapshot, or None if nothing was published yet."""

    def subscribe(self, callback: Callable[[Snapshot], None]) -> None:
        """Call ``callback(snapshot)`` whenever a newer snapshot is published."""
