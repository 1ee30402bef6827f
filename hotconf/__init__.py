"""hotconf: a fork-safe Apollo config client.

Public API: ``Config``, ``ChangeEvent``/``Change``/``ChangeType`` and the errors below.
"""

__version__ = "0.1.0"

from .changes import Change, ChangeEvent, ChangeType  # noqa: E402
from .config import Config  # noqa: E402
from .errors import (  # noqa: E402
    ApolloError,
    AuthError,
    ConfigUnavailableError,
    ConfigValueError,
    HotconfError,
    NotFoundError,
    ProtocolError,
    SettingsError,
    TransportError,
    UnknownNamespaceError,
)
from .snapshot import NamespaceSnapshot, Snapshot  # noqa: E402

__all__ = [
    "ApolloError", "AuthError", "Change", "ChangeEvent", "ChangeType", "Config",
    "ConfigUnavailableError", "ConfigValueError", "HotconfError", "NamespaceSnapshot",
    "NotFoundError", "ProtocolError", "SettingsError", "Snapshot", "TransportError",
    "UnknownNamespaceError",
]
