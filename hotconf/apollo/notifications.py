"""Client-side notification bookkeeping (pure).

Ids are global release-message ids: they start at -1, jump, and are only ever raised. The
server echoes a namespace in the client's spelling with any ``.properties`` suffix stripped, so
one answer may stand for ``application`` and ``application.properties`` alike.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Tuple

from .responses import Notification
from .urls import NOTIFICATION_ID_PLACEHOLDER

_PROPERTIES = ".properties"


def _strip_properties(name: str) -> str:
    return name[: -len(_PROPERTIES)] if name.lower().endswith(_PROPERTIES) else name


class NotificationState:
    def __init__(self, namespaces: Iterable[str]):
        self._ids: Dict[str, int] = {ns: NOTIFICATION_ID_PLACEHOLDER for ns in namespaces}
        self._messages: Dict[str, Dict[str, int]] = {ns: {} for ns in self._ids}

    @property
    def namespaces(self) -> List[str]:
        return list(self._ids)

    def ids(self) -> List[Tuple[str, int]]:
        """What goes into the next long poll, in the client's spelling."""
        return list(self._ids.items())

    def id_of(self, namespace: str) -> int:
        return self._ids[namespace]

    def messages_of(self, namespace: str) -> Mapping[str, int]:
        return dict(self._messages[namespace])

    def targets(self, notification: Notification) -> List[str]:
        """The configured namespaces a notification answers for (``.properties`` twins too)."""
        echoed = _strip_properties(notification.namespace_name).lower()
        return [ns for ns in self._ids if _strip_properties(ns).lower() == echoed]

    def pending_messages(self, namespace: str, notification: Notification) -> Dict[str, int]:
        """Messages to send with the ``/configs`` fetch this notification triggers."""
        merged = dict(self._messages[namespace])
        for key, nid in notification.messages.items():
            if nid > merged.get(key, NOTIFICATION_ID_PLACEHOLDER):
                merged[key] = nid
        return merged

    def advance(self, namespace: str, notification: Notification) -> None:
        """Record a notification once the release it announced has been fetched."""
        if notification.notification_id > self._ids[namespace]:
            self._ids[namespace] = notification.notification_id
        self._messages[namespace] = self.pending_messages(namespace, notification)

    def reset(self) -> None:
        """Forget every id: used when the server's ids are evidently not ours (a fresh server)."""
        for ns in self._ids:
            self._ids[ns] = NOTIFICATION_ID_PLACEHOLDER
            self._messages[ns] = {}
