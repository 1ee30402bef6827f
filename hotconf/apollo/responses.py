"""Parsing Apollo responses (pure).

Every function takes the raw body and either returns a well-formed value or raises
``ProtocolError``: nothing else escapes, whatever the bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, cast

from ..errors import ProtocolError

MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class ApolloConfig:
    app_id: str
    cluster: str
    namespace_name: str
    configurations: Dict[str, str]
    release_key: str
    #: ``configurations`` as the JSON object the server sent (a full sync), for the poller to
    #: store as it is rather than encode it again.
    configurations_json: Optional[bytes] = None


@dataclass(frozen=True)
class Notification:
    namespace_name: str
    notification_id: int
    messages: Dict[str, int] = field(default_factory=dict)


def _load_json(body: bytes, what: str) -> Any:
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(f"{what}: body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what}: body is not valid JSON ({exc.__class__.__name__})") from None


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
_MAX_MEMBERS = 64


def _skip_space(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _object_with_spans(text: str) -> Tuple[Dict[str, Any], Dict[str, Tuple[int, int]]]:
    """``json.loads`` of a JSON object, and where each member's value is in ``text``, for one
    parse. ValueError if it is not a JSON object."""
    at = _skip_space(text, 0)
    if text[at:at + 1] != "{":
        raise ValueError("not a JSON object")
    members: Dict[str, Any] = {}
    spans: Dict[str, Tuple[int, int]] = {}
    at = _skip_space(text, at + 1)
    if text[at:at + 1] == "}":
        at += 1
    else:
        for _ in range(_MAX_MEMBERS):
            key, at = _DECODER.raw_decode(text, at)
            at = _skip_space(text, at)
            if not isinstance(key, str) or text[at:at + 1] != ":":
                raise ValueError("an object member has no string key")
            start = _skip_space(text, at + 1)
            members[key], at = _DECODER.raw_decode(text, start)
            spans[key] = (start, at)
            at = _skip_space(text, at)
            if text[at:at + 1] == ",":
                at = _skip_space(text, at + 1)
            elif text[at:at + 1] == "}":
                at += 1
                break
            else:
                raise ValueError("expected ',' or '}' after an object member")
        else:  # not an answer of Apollo's (a handful of members): json.loads reads it faster
            raise ValueError("an object of too many members")
    if _skip_space(text, at) != len(text):
        raise ValueError("extra data after the JSON object")
    return members, spans


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string_map(value: Any, what: str) -> Dict[str, str]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what}: 'configurations' is not an object")
    for k, v in value.items():
        if not isinstance(v, str):
            raise ProtocolError(f"{what}: value of {k!r} is {type(v).__name__}, not a string")
    return dict(value)


def parse_services(body: bytes) -> List[str]:
    """``/services/config`` -> the config-service base URLs (``homepageUrl``), in order."""
    data = _load_json(body, "/services/config")
    if not isinstance(data, list):
        raise ProtocolError("/services/config: expected a JSON array of services")
    urls = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("homepageUrl"), str):
            raise ProtocolError("/services/config: an entry has no string 'homepageUrl'")
        url = item["homepageUrl"].strip()
        if not url.startswith(("http://", "https://")):
            raise ProtocolError(f"/services/config: homepageUrl {url!r} is not an http(s) URL")
        urls.append(url)
    return urls


def apply_incremental(
    base: Mapping[str, str], changes: Any, what: str = "/configs"
) -> Dict[str, str]:
    if not isinstance(changes, list):
        raise ProtocolError(f"{what}: 'configurationChanges' is not a list")
    result = dict(base)
    for change in changes:
        if not isinstance(change, dict) or not isinstance(change.get("key"), str):
            raise ProtocolError(f"{what}: a configuration change has no string 'key'")
        kind = change.get("configurationChangeType")
        key = change["key"]
        if kind in ("ADDED", "MODIFIED"):
            value = change.get("newValue")
            if not isinstance(value, str):
                raise ProtocolError(f"{what}: change of {key!r} has no string 'newValue'")
            result[key] = value
        elif kind == "DELETED":
            result.pop(key, None)
        else:
            raise ProtocolError(f"{what}: unknown configurationChangeType {kind!r}")
    return result


def parse_config(body: bytes, previous: Optional[Mapping[str, str]] = None) -> ApolloConfig:
    """``/configs/{app}/{cluster}/{ns}`` 200 body.

    ``previous`` is the client's current configurations, used when the server answers with an
    incremental sync.
    """
    try:
        text = body.decode("utf-8") if len(body) <= MAX_BODY_BYTES else ""
        data, spans = _object_with_spans(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        data, spans = _load_json(body, "/configs"), {}  # which says what is wrong with it
        if not isinstance(data, dict):
            raise ProtocolError("/configs: expected a JSON object") from None
    for name in ("appId", "cluster", "namespaceName", "releaseKey"):
        if not isinstance(data.get(name), str):
            raise ProtocolError(f"/configs: field {name!r} is missing or not a string")
    sync_type = data.get("configSyncType")
    if sync_type in (None, "", "FullSync"):
        if "configurations" not in data:  # a truncated object or an error page in JSON
            raise ProtocolError("/configs: the answer has no 'configurations'")
        configurations = _string_map(data["configurations"], "/configs")
        start, end = spans.get("configurations", (0, 0))
        as_sent = text[start:end].encode("utf-8") if end else None
    elif sync_type == "IncrementalSync":
        if previous is None:
            raise ProtocolError("/configs: incremental sync without a previous release")
        configurations = apply_incremental(previous, data.get("configurationChanges"))
        as_sent = None
    else:
        raise ProtocolError(f"/configs: unknown configSyncType {sync_type!r}")
    return ApolloConfig(
        app_id=data["appId"],
        cluster=data["cluster"],
        namespace_name=data["namespaceName"],
        configurations=configurations,
        release_key=data["releaseKey"],
        configurations_json=as_sent,
    )


def parse_notifications(body: bytes) -> List[Notification]:
    """``/notifications/v2`` 200 body."""
    data = _load_json(body, "/notifications/v2")
    if not isinstance(data, list):
        raise ProtocolError("/notifications/v2: expected a JSON array")
    result = []
    for item in data:
        if not isinstance(item, dict):
            raise ProtocolError("/notifications/v2: an entry is not an object")
        name, nid = item.get("namespaceName"), item.get("notificationId")
        if not isinstance(name, str) or not name or not _is_int(nid):
            raise ProtocolError(
                "/notifications/v2: an entry lacks a namespaceName string or an integer "
                "notificationId"
            )
        details: Dict[str, int] = {}
        messages = item.get("messages")
        if messages is not None:
            raw = messages.get("details") if isinstance(messages, dict) else None
            if not isinstance(raw, dict) or not all(_is_int(v) for v in raw.values()):
                raise ProtocolError("/notifications/v2: 'messages.details' is not a map of ids")
            details = dict(raw)
        result.append(Notification(name, cast(int, nid), details))
    return result


def error_summary(body: bytes, limit: int = 200) -> str:
    """A short, printable hint from an error body (Spring's ``message``/``error`` if JSON)."""
    try:
        data = json.loads(body[:65536].decode("utf-8"))
        if isinstance(data, dict):
            for name in ("message", "error"):
                if isinstance(data.get(name), str) and data[name]:
                    return data[name][:limit]
    except (UnicodeDecodeError, ValueError, RecursionError):
        pass
    text = body[:limit].decode("utf-8", "replace").strip()
    return "".join(ch if ch.isprintable() else " " for ch in text)
