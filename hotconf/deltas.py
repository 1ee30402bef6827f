"""Deltas between two releases of a namespace (pure): what a reader that holds the previous
release applies instead of decoding the whole new one.

A one-key release of a 500-key namespace would otherwise make every worker read and decode the
namespace's whole part (about 55 KB of JSON); with the delta inline in the index it applies one
key to the values it holds. A delta names the part it applies to by that part's digest, so a
reader applies it only to exactly that content; any other reader decodes the new part.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

#: A delta is kept only while it changes at most this share of the namespace's keys: beyond
#: that, decoding the new part costs about as much as applying the delta.
MAX_SHARE = 0.25

_ABSENT = object()


def delta_between(before: Mapping[str, str], after: Mapping[str, str],
                  base_digest: str) -> Optional[Dict[str, Any]]:
    """``{"from": base_digest, "set": {...}, "unset": [...]}``, or None when the change is
    too large for a delta to pay (or there is none)."""
    limit = max(1, int(len(after) * MAX_SHARE))
    changed: Dict[str, str] = {}
    value_of = before.get
    added = 0
    for key, value in after.items():
        old = value_of(key, _ABSENT)
        if old is _ABSENT or old != value:
            added += old is _ABSENT
            changed[key] = value
            if len(changed) > limit:
                return None
    # Every key of ``before`` is still there unless fewer of them were kept than it has.
    removed: List[str] = []
    if len(after) - added != len(before):
        removed = [key for key in before if key not in after]
    if not (changed or removed) or len(changed) + len(removed) > limit:
        return None
    return {"from": base_digest, "set": changed, "unset": removed}


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
    result.update(changed)
    for key in removed:
        result.pop(key, None)
    return result
