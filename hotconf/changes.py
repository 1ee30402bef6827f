"""Change events (pure): what a release changed in one namespace, key by key."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType
from typing import Collection, Dict, List, Mapping, NamedTuple, Optional

_ABSENT: object = object()


class ChangeType(str, enum.Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


class Change(NamedTuple):
    """One key's change; unpacks as ``old, new, type``."""

    old: Optional[str]
    new: Optional[str]
    type: ChangeType


@dataclass(frozen=True)
class ChangeEvent:
    namespace: str
    changes: Mapping[str, Change]
    release_key: Optional[str] = None

    @property
    def changed_keys(self) -> List[str]:
        return list(self.changes)

    def is_changed(self, key: str) -> bool:
        return key in self.changes

    def only(
        self, keys: Optional[Collection[str]] = None, prefixes: Optional[Collection[str]] = None
    ) -> Optional[ChangeEvent]:
        """The part of this event a listener with these interests sees; None if nothing."""
        if not keys and not prefixes:
            return self
        wanted = set(keys or ())
        starts = tuple(prefixes or ())
        picked = {
            k: c for k, c in self.changes.items() if k in wanted or (starts and k.startswith(starts))
        }
        if not picked:
            return None
        return ChangeEvent(self.namespace, MappingProxyType(picked), self.release_key)


def diff_values(old: Mapping[str, str], new: Mapping[str, str]) -> Dict[str, Change]:
    """Key by key. Costs one dict lookup per key of ``new`` (a release of a 500-key namespace
    is diffed in each process on the way to its listeners), and a second pass over ``old``
    only when some of its keys are gone."""
    if old == new:
        return {}
    changes: Dict[str, Change] = {}
    before_of = old.get
    kept = 0
    for key, value in new.items():
        before = before_of(key, _ABSENT)
        if before is _ABSENT:
            changes[key] = Change(None, value, ChangeType.ADDED)
            continue
        kept += 1
        if before != value:
            changes[key] = Change(before, value, ChangeType.MODIFIED)  # type: ignore[arg-type]
    if kept != len(old):
        for key, value in old.items():
            if key not in new:
                changes[key] = Change(value, None, ChangeType.DELETED)
    return changes


def apply_changes(values: Mapping[str, str], changes: Mapping[str, Change]) -> Dict[str, str]:
    result = dict(values)
    for key, change in changes.items():
        if change.type is ChangeType.DELETED:
            result.pop(key, None)
        else:
            result[key] = change.new  # type: ignore[assignment]
    return result
