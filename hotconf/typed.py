"""Typed values (pure): how the typed getters read a config string."""

from __future__ import annotations

import json
from typing import Any, Callable, List, Tuple

from .errors import ConfigValueError

_TRUE = frozenset({"true", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "off", "0"})

#: (what the error calls it, converter); converters raise ValueError or TypeError
Conversion = Tuple[str, Callable[[str], Any]]


def to_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(text)


def list_of(separator: str) -> Callable[[str], List[str]]:
    return lambda text: [part.strip() for part in text.split(separator) if part.strip()]


INTEGER: Conversion = ("integer", lambda s: int(s.strip()))
NUMBER: Conversion = ("number", lambda s: float(s.strip()))
BOOLEAN: Conversion = ("boolean (true/false, yes/no, on/off, 1/0)", to_bool)
JSON: Conversion = ("JSON", json.loads)


def convert(key: str, namespace: str, raw: str, conversion: Conversion) -> Any:
    """``raw`` converted, or ConfigValueError saying which key, what value, what was wanted."""
    wanted, function = conversion
    try:
        return function(raw)
    except (ValueError, TypeError) as exc:
        detail = str(exc) if conversion is JSON else ""  # json's message quotes no value
    # Raised outside the except block: no __context__ chain that would carry int()'s message
    # (which quotes the value) into a traceback.
    raise ConfigValueError(key, namespace, raw, wanted, detail)
