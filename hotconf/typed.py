"""Typed values (pure): how the typed getters read a config string."""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, List, Optional, Tuple

from .errors import ConfigValueError

log = logging.getLogger("hotconf")

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


def convert_or_default(key: str, namespace: str, raw: Optional[str], conversion: Conversion,
                       default: Any, no_default: Any) -> Any:
    """``cfg.get_int`` and the others: a missing key gives ``default`` (None if there is none);
    a value that does not convert raises, or gives ``default`` with a warning if there is one."""
    if raw is None:
        return None if default is no_default else default
    try:
        return convert(key, namespace, raw, conversion)
    except ConfigValueError as error:
        if default is no_default:
            raise
        log.warning("hotconf: %s; using the default %r", error, default)
        return default
