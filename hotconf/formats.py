"""Namespace formats (pure): which format a namespace is, and how its content parses.

Non-properties namespaces carry their whole file as the single value ``content``. json and
yaml content is parsed and flattened into dotted keys (``db.pool.size``, ``servers[0]``), as the
Java client does for yaml, so ``get()`` and change events work on nested values too.
"""

from __future__ import annotations

import enum
import json
from typing import Any, Dict, Mapping, Optional, Tuple

from .errors import FormatError

CONTENT_KEY = "content"


class Format(str, enum.Enum):
    PROPERTIES = "properties"
    JSON = "json"
    YAML = "yaml"
    YML = "yml"
    XML = "xml"
    TXT = "txt"

    @property
    def is_properties(self) -> bool:
        return self is Format.PROPERTIES

    @property
    def is_structured(self) -> bool:
        return self in (Format.JSON, Format.YAML, Format.YML)


def format_of(namespace: str) -> Format:
    """By suffix, case-insensitively; no known suffix means properties."""
    _, dot, suffix = namespace.rpartition(".")
    if dot:
        try:
            return Format(suffix.lower())
        except ValueError:
            pass
    return Format.PROPERTIES


def _scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, str):
        return value
    return str(value)  # int, datetime and date from yaml


def flatten(value: Any, prefix: str = "") -> Dict[str, str]:
    """Nested mappings and lists -> ``{"a.b": "1", "a.c[0]": "x"}``; leaves become text."""
    out: Dict[str, str] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if not node and path:
                out[path] = ""
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, list):
            if not node and path:
                out[path] = ""
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
        elif path:
            out[path] = _scalar_text(node)
        else:
            out[CONTENT_KEY] = _scalar_text(node)  # a bare scalar document

    walk(value, prefix)
    return out


def _load_yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise FormatError(
            "yaml namespaces need PyYAML: pip install 'hotconf[yaml]'"
        ) from None
    try:
        # SafeLoader only: the content comes from the network and must never build objects.
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise FormatError(f"invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise FormatError("invalid YAML: nested too deeply") from None


def parse_content(fmt: Format, configurations: Mapping[str, str]) -> Tuple[Optional[str], Any,
                                                                             Dict[str, str]]:
    """-> (content, parsed, flat values) for one namespace release."""
    if fmt.is_properties:
        return None, None, dict(configurations)
    content = configurations.get(CONTENT_KEY, "")
    if not fmt.is_structured:
        return content, None, {CONTENT_KEY: content}
    if not content.strip():
        return content, None, {}
    if fmt is Format.JSON:
        try:
            parsed = json.loads(content)
        except ValueError as exc:
            raise FormatError(f"invalid JSON: {exc}") from None
        except RecursionError:
            raise FormatError("invalid JSON: nested too deeply") from None
    else:
        parsed = _load_yaml(content)
    return content, parsed, flatten(parsed)


def resolve_path(parsed: Any, dotted: str) -> Any:
    """Walk ``a.b[0].c`` into a parsed document; KeyError when it is not there."""
    node = parsed
    for part in dotted.split("."):
        name, _, rest = part.partition("[")
        if name:
            if not isinstance(node, dict) or name not in node:
                raise KeyError(dotted)
            node = node[name]
        while rest:
            index, _, rest = rest.partition("]")
            rest = rest.lstrip("[")
            if not isinstance(node, list) or not index.isdigit() or int(index) >= len(node):
                raise KeyError(dotted)
            node = node[int(index)]
    return node
