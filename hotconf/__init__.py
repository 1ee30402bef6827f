"""hotconf: a fork-safe Apollo config client.

Public API: ``Config``, ``ChangeEvent``/``Change``/``ChangeType``, ``ReloadRequest``, the
snapshots, ``Status`` (``cfg.status()``) and every error. Importing the package also
registers the servers hotconf knows (``hotconf.servers``), which the process role asks where it
runs.
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
    InvalidValuesError,
    MissingPartError,
    NotFoundError,
    ProtocolError,
    ReloadError,
    ResourceError,
    SettingsError,
    SnapshotTooLargeError,
    StoreError,
    TransportError,
    UnknownNamespaceError,
    ValueProblem,
)
from .reload.policy import ReloadRequest
from .resources import Resource
from .snapshot import NamespaceSnapshot, Snapshot
from .status import DependentState, PollerHealth, ProcessRecord, Status

__all__ = [
    "ApolloError", "AuthError", "Change", "ChangeEvent", "ChangeType", "Config",
    "ConfigUnavailableError", "ConfigValueError", "DependentState", "FormatError",
    "HTTPStatusError", "HotconfError", "InvalidValuesError", "MissingPartError",
    "NamespaceSnapshot", "NotFoundError", "PollerHealth", "ProcessRecord", "ProtocolError",
    "ReloadError", "ReloadRequest", "Resource", "ResourceError", "SettingsError", "Snapshot",
    "SnapshotTooLargeError", "Status", "StoreError", "TransportError", "UnknownNamespaceError",
    "ValueProblem", "__version__",
]
