"""Building Apollo request URLs (pure).

Every value is percent-encoded here with nothing left for the HTTP library to re-encode, so the
path and query that are signed are the ones sent.
"""

from __future__ import annotations

import json
from typing import Iterable, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

NOTIFICATION_ID_PLACEHOLDER = -1


def _q(value: str) -> str:
    return quote(value, safe="")


def join(base: str, path_with_query: str) -> str:
    """Append an absolute path to a service base URL (which may carry a context path)."""
    return base.rstrip("/") + path_with_query


def _query(params: Sequence[Tuple[str, Optional[str]]]) -> str:
    parts = [f"{_q(k)}={_q(v)}" for k, v in params if v is not None]
    return ("?" + "&".join(parts)) if parts else ""


def compact_json(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=False)


def services_path(app_id: str, ip: Optional[str] = None) -> str:
    return "/services/config" + _query([("appId", app_id), ("ip", ip)])


def configs_path(
    app_id: str,
    cluster: str,
    namespace: str,
    *,
    release_key: Optional[str] = None,
    ip: Optional[str] = None,
    label: Optional[str] = None,
    data_center: Optional[str] = None,
    messages: Optional[Mapping[str, int]] = None,
) -> str:
    path = f"/configs/{_q(app_id)}/{_q(cluster)}/{_q(namespace)}"
    encoded_messages = compact_json({"details": dict(messages)}) if messages else None
    return path + _query(
        [
            ("releaseKey", release_key),
            ("ip", ip),
            ("label", label),
            ("dataCenter", data_center),
            ("messages", encoded_messages),
        ]
    )


def notifications_path(
    app_id: str,
    cluster: str,
    notification_ids: Iterable[Tuple[str, int]],
    *,
    data_center: Optional[str] = None,
    ip: Optional[str] = None,
) -> str:
    entries = [{"namespaceName": ns, "notificationId": nid} for ns, nid in notification_ids]
    return "/notifications/v2" + _query(
        [
            ("appId", app_id),
            ("cluster", cluster),
            ("notifications", compact_json(entries)),
            ("dataCenter", data_center),
            ("ip", ip),
        ]
    )


def same_namespace(answered: str, asked: str) -> bool:
    """Apollo answers in the namespace's canonical spelling: case aside, and without the
    ``.properties`` suffix a properties namespace may be asked with."""
    def canonical(name: str) -> str:
        name = name.lower()
        return name[: -len(".properties")] if name.endswith(".properties") else name

    return canonical(answered) == canonical(asked)
