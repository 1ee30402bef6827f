"""Deltas between two releases of a namespace (pure): what a reader that holds the previous
release applies instead of decoding the whole new one.

A one-key release of a 500-key namespace would otherwise make every worker read and decode the
namespace's whole part (about 55 KB of JSON); with the delta inline in the index it applies one
key to the values it holds. A delta names the part it applies to by that part's digest, so a
reader applies it only to exactly that content, and it yields the new release's keys in the new
release's order (a reader that applies it and one that decodes the part hold the same thing);
any other reader decodes the new part.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

#: A delta is kept only while it changes at most this share of the namespace's keys and of its
#: part's bytes: beyond that, decoding the new part costs about as much as applying the delta,
#: and the index every reader decodes at each release would grow for nothing. So a namespace
#: of fewer than 4 keys (a yaml or json namespace is one: its content) never has one.
MAX_SHARE = 0.25
#: The deltas one index carries, in bytes (roughly): past it, the rest go without.
MAX_INDEX_DELTAS = 64 * 1024

_ABSENT = object()


def delta_between(before: Mapping[str, str], after: Mapping[str, str], base_digest: str,
                  part_bytes: int) -> Optional[Dict[str, Any]]:
    """``{"from": base_digest, "set": {...}, "unset": [...]}``, or None when there is no change
    or a delta would not pay (see ``MAX_SHARE``; ``part_bytes`` is the new part's size)."""
    max_keys, max_bytes = int(len(after) * MAX_SHARE), int(part_bytes * MAX_SHARE)
    changed: Dict[str, str] = {}
    value_of = before.get
    added = size = 0
    for key, value in after.items():
        old = value_of(key, _ABSENT)
        if old is _ABSENT or old != value:
            added += old is _ABSENT
            changed[key] = value
            size += len(key) + len(value)
            if len(changed) > max_keys or size > max_bytes:
                return None
    # Every key of ``before`` is still there unless fewer of them were kept than it has.
    removed: List[str] = []
    if len(after) - added != len(before):
        removed = [key for key in before if key not in after]
        size += sum(len(key) for key in removed)
    if not (changed or removed) or len(changed) + len(removed) > max_keys or size > max_bytes:
        return None
    if not _same_order_once_applied(before, after, added, removed):
        return None
    return {"from": base_digest, "set": changed, "unset": removed}


def _same_order_once_applied(before: Mapping[str, str], after: Mapping[str, str], added: int,
                             removed: List[str]) -> bool:
    """Applying keeps the kept keys in ``before``'s order and appends the added ones: is that
    ``after``'s order?"""
    if not added and not removed:
        return list(before) == list(after)
    gone = set(removed)
    return [k for k in before if k not in gone] + [k for k in after if k not in before] == \
        list(after)


def delta_size(delta: Dict[str, Any]) -> int:
    """About its size in the index, in bytes."""
    return (sum(len(k) + len(v) + 6 for k, v in delta["set"].items())
            + sum(len(k) + 3 for k in delta["unset"]) + 80)


def apply_delta(before: Mapping[str, str], delta: Any) -> Optional[Dict[str, str]]:
    """``before`` with ``delta`` applied; None if ``delta`` is not well formed (the reader then
    decodes the whole part)."""
    if not isinstance(delta, dict):
        return None
    changed, removed = delta.get("set"), delta.get("unset")
    if (not isinstance(changed, dict) or not isinstance(removed, list)
            or not all(isinstance(v, str) for v in changed.values())
            or not all(isinstance(k, str) for k in removed)):
        return None
    result = dict(before)
    for key in removed:
        result.pop(key, None)
    result.update(changed)
    return result
