"""Typed values (pure): how the typed getters read a config string."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple

from .errors import ConfigValueError

if TYPE_CHECKING:
    from .snapshot import NamespaceSnapshot

log = logging.getLogger("hotconf")

DEFAULT_NAMESPACE = "application"
_NO_DEFAULT: Any = object()

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


class TypedReads:
    """The typed getters, on top of ``get`` and ``namespace`` (``Config`` has them)."""

    def get(self, key: str, default: Any = None, namespace: str = DEFAULT_NAMESPACE) -> Any:
        raise NotImplementedError

    def namespace(self, name: str = DEFAULT_NAMESPACE) -> NamespaceSnapshot:
        raise NotImplementedError

    def _typed(self, key: str, default: Any, namespace: str, conversion: Conversion) -> Any:
        return convert_or_default(key, namespace, self.get(key, None, namespace),
                                        conversion, default, _NO_DEFAULT)

    def get_int(self, key: str, default: Any = _NO_DEFAULT,
                namespace: str = DEFAULT_NAMESPACE) -> Optional[int]:
        return self._typed(key, default, namespace, INTEGER)  # type: ignore[no-any-return]

    def get_float(self, key: str, default: Any = _NO_DEFAULT,
                  namespace: str = DEFAULT_NAMESPACE) -> Optional[float]:
        return self._typed(key, default, namespace, NUMBER)  # type: ignore[no-any-return]

    def get_bool(self, key: str, default: Any = _NO_DEFAULT,
                 namespace: str = DEFAULT_NAMESPACE) -> Optional[bool]:
        return self._typed(key, default, namespace, BOOLEAN)  # type: ignore[no-any-return]

    def get_list(self, key: str, default: Any = _NO_DEFAULT, namespace: str = DEFAULT_NAMESPACE,
                 separator: str = ",") -> Optional[List[str]]:
        return self._typed(key, default, namespace,  # type: ignore[no-any-return]
                           ("list", list_of(separator)))

    def get_json(self, key: str, default: Any = _NO_DEFAULT,
                 namespace: str = DEFAULT_NAMESPACE) -> Any:
        """A JSON value; in a json/yaml namespace also a whole subtree by dotted path."""
        ns = self.namespace(namespace)
        if key not in ns and ns.format.is_structured:
            try:
                return ns.lookup(key)
            except KeyError:
                return None if default is _NO_DEFAULT else default
        return self._typed(key, default, namespace, JSON)

