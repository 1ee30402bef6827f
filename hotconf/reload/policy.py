"""Reload policy (pure): which changes need a reload, and when to fire it.

Keys baked into long-lived objects (a database URL, a pool size) are named with glob patterns,
``reload_on=["db.*", "redis.url", "db.yaml:*"]``; a pattern with a ``:`` matches
``namespace:key``, one without matches the key in any namespace. Changes to them are collected
and settle like consul-template's ``wait``: the reload fires once the changes have been quiet
for ``wait_min``, but never later than ``wait_max`` after the first one, plus a random
``splay`` so a fleet does not reload at once, and never sooner than ``min_interval`` after the
previous reload. A key changed and changed back within the window reloads nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Callable, Dict, Iterable, Mapping, Optional, Tuple

from ..changes import ChangeEvent
from ..masking import mask

KeyRef = Tuple[str, str]  # (namespace, key)
Changes = Dict[KeyRef, Tuple[Optional[str], Optional[str]]]  # ref -> (old, new)


@dataclass(frozen=True)
class ReloadPolicy:
    patterns: Tuple[str, ...] = ()
    wait_min: float = 2.0
    wait_max: float = 10.0
    splay: float = 0.0
    min_interval: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.patterns, str):
            object.__setattr__(self, "patterns", (self.patterns,))
        else:
            object.__setattr__(self, "patterns", tuple(self.patterns))
        if not 0 <= self.wait_min <= self.wait_max:
            raise ValueError("reload wait needs 0 <= wait_min <= wait_max")
        if self.splay < 0 or self.min_interval < 0:
            raise ValueError("reload splay and min_interval cannot be negative")

    def matches(self, namespace: str, key: str) -> bool:
        for pattern in self.patterns:
            subject = f"{namespace}:{key}" if ":" in pattern else key
            if fnmatchcase(subject, pattern):
                return True
        return False

    def select(self, namespaces: Mapping[str, Mapping[str, str]]) -> Dict[KeyRef, str]:
        """The keys these patterns name and their values now: (namespace, key) -> value. A
        pattern without glob characters is looked up, not matched against every key."""
        found: Dict[KeyRef, str] = {}
        for pattern in self.patterns:
            literal = not any(c in pattern for c in "*?[")
            for name, values in namespaces.items():
                if literal:
                    scope, _, key = pattern.partition(":") if ":" in pattern else (name, "", pattern)
                    if scope == name and key in values:
                        found[(name, key)] = values[key]
                    continue
                for key, value in values.items():
                    subject = f"{name}:{key}" if ":" in pattern else key
                    if fnmatchcase(subject, pattern):
                        found[(name, key)] = value
        return found

    def triggering(self, events: Iterable[ChangeEvent]) -> Changes:
        """The changes in ``events`` that call for a reload: (namespace, key) -> (old, new)."""
        found = {}
        for event in events:
            for key, change in event.changes.items():
                if change.old != change.new and self.matches(event.namespace, key):
                    found[(event.namespace, key)] = (change.old, change.new)
        return found


@dataclass
class Debounce:
    """When to reload, given the triggering changes seen so far. Times are monotonic seconds."""

    policy: ReloadPolicy
    rand: Callable[[], float] = field(default=random.random)
    pending: Changes = field(default_factory=dict)
    first_at: Optional[float] = None
    last_at: Optional[float] = None
    last_reload_at: Optional[float] = None
    _splay: float = 0.0

    def add(self, now: float, changes: Changes) -> None:
        if not changes:
            return
        if not self.pending:
            self.first_at = now
            self._splay = self.policy.splay * self.rand()
        for ref, (old, new) in changes.items():
            original = self.pending[ref][0] if ref in self.pending else old
            self.pending[ref] = (original, new)  # keep the value before the burst; last new wins
        self.last_at = now

    def due_at(self) -> Optional[float]:
        if not self.pending:
            return None
        assert self.first_at is not None and self.last_at is not None
        at = min(self.last_at + self.policy.wait_min, self.first_at + self.policy.wait_max)
        at += self._splay
        if self.last_reload_at is not None:
            at = max(at, self.last_reload_at + self.policy.min_interval)
        return at

    def fire(self, now: float) -> Changes:
        """Take what is due: the net changes (a key changed back is dropped). An empty result
        means no reload is needed after all."""
        net = {ref: ch for ref, ch in self.pending.items() if ch[0] != ch[1]}
        self.pending = {}
        self.first_at = self.last_at = None
        if net:
            self.last_reload_at = now
        return net


def describe(changes: Changes) -> str:
    """For logs: ``application:db.url 'a' -> 'b', db.yaml:password **** -> ****``."""
    parts = []
    for (namespace, key), (old, new) in sorted(changes.items()):
        parts.append(f"{namespace}:{key} {mask(key, old)!r} -> {mask(key, new)!r}")
    return ", ".join(parts)



@dataclass(frozen=True)
class ReloadRequest:
    """What ``on_reload`` receives: the net changes that called for it and a log-safe summary."""

    changes: Changes
    summary: str
