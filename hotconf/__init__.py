"""hotconf: a fork-safe Apollo config client.

Public API: ``Config``, ``ChangeEvent``/``Change``/``ChangeType``, ``ReloadRequest``, the
snapshots, and every error. Importing the package also registers the servers hotconf knows
(``hotconf.servers``), which the process role asks where it runs.
"""

from . import servers  # noqa: F401 - registers uWSGI, gunicorn and the plain process
from ._version import __version__
from .changes import Change, ChangeEvent, ChangeType
from .config import Config
from .errors import (
    ApolloError,
    AuthError,
    ConfigUnavailableError,
    ConfigValueError,
    FormatError,
    HotconfError,
    HTTPStatusError,
    MissingPartError,
    NotFoundError,
    ProtocolError,
    ReloadError,
    SettingsError,
    SnapshotTooLargeError,
    StoreError,
    TransportError,
    UnknownNamespaceError,
)
from .reload.policy import ReloadRequest
from .snapshot import NamespaceSnapshot, Snapshot

__all__ = [
    "ApolloError", "AuthError", "Change", "ChangeEvent", "ChangeType", "Config",
    "ConfigUnavailableError", "ConfigValueError", "FormatError", "HTTPStatusError",
    "HotconfError", "MissingPartError", "NamespaceSnapshot", "NotFoundError", "ProtocolError", "ReloadError",
    "ReloadRequest", "SettingsError", "Snapshot", "SnapshotTooLargeError", "StoreError",
    "TransportError", "UnknownNamespaceError", "__version__",
]
