"""Exceptions. Each message says what happened and what to do next."""

from __future__ import annotations

from typing import Iterable, List, NamedTuple, Optional, Sequence

from .masking import mask


class HotconfError(Exception):
    """Base class of every hotconf error."""


class SettingsError(HotconfError, ValueError):
    """The arguments or environment variables given to hotconf are incomplete or invalid."""


class ConfigUnavailableError(HotconfError):
    """No usable configuration: the config service did not answer and there is no local cache."""


class UnknownNamespaceError(HotconfError, KeyError):
    """A namespace was asked for that this Config does not load."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""

    @classmethod
    def of(cls, namespace: str, loaded: Iterable[str]) -> UnknownNamespaceError:
        return cls(f"namespace {namespace!r} is not loaded by this Config (namespaces="
                   f"{list(loaded)}); add it to namespaces= or pass namespace=")


class ConfigValueError(HotconfError, ValueError):
    """A typed getter found a value it cannot convert."""

    def __init__(self, key: str, namespace: str, value: str, wanted: str, detail: str = ""):
        # Shown as it may be logged: a secret-looking key's value never appears, here or in
        # .value (the message and the attributes end up in logs and error reports).
        value = mask(key, value) or ""
        self.key, self.namespace, self.value, self.wanted = key, namespace, value, wanted
        shown = value if len(value) <= 80 else value[:77] + "..."
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{namespace}:{key} = {shown!r} is not a valid {wanted}{extra}; fix the value in "
            f"Apollo or pass default= to fall back"
        )


class ValueProblem(NamedTuple):
    """One key of a bound model (``cfg.bind``) that does not validate; ``value`` is masked."""

    key: str
    namespace: str
    value: Optional[str]  # None: the key is missing
    message: str

    def __str__(self) -> str:
        shown = "missing" if self.value is None else repr(
            self.value if len(self.value) <= 80 else self.value[:77] + "...")
        return f"{self.namespace}:{self.key} = {shown}: {self.message}"


class InvalidValuesError(ConfigValueError):
    """Values that do not fit a bound model: ``problems`` names each key (values masked). At
    bind time it is raised; on a release the model keeps its last valid values instead."""

    def __init__(self, model: str, problems: Sequence[ValueProblem]):
        self.model = model
        self.problems = list(problems)
        first = self.problems[0] if self.problems else ValueProblem("?", "?", None, "invalid")
        self.key, self.namespace, self.wanted = first.key, first.namespace, model
        self.value = first.value or ""
        listed = "; ".join(str(p) for p in self.problems)
        ValueError.__init__(self, f"{model}: {len(self.problems)} invalid value"
                                  f"{'s' if len(self.problems) != 1 else ''} ({listed}); fix "
                                  f"them in Apollo (the model keeps its last valid values)")

    @property
    def keys(self) -> List[str]:
        return [p.key for p in self.problems]


class ResourceError(HotconfError):
    """A resource (``cfg.resource``) could not be built and there is no earlier one to serve."""


class FormatError(HotconfError):
    """A json/yaml namespace's content does not parse."""


class ApolloError(HotconfError):
    """Talking to the Apollo config service failed."""


class ProtocolError(ApolloError):
    """The config service answered with a body that is not what the Apollo protocol says."""


class MissingPartError(ProtocolError):
    """A stored snapshot's index names a namespace part that is gone or holds other content
    (a newer release replaced it while an older index was read): read the index again."""


class TransportError(ApolloError):
    """The config service could not be reached (connection refused, timeout, reset)."""


class HTTPStatusError(ApolloError):
    """The config service answered with an unexpected HTTP status."""

    def __init__(self, status: int, url: str, message: str, body_hint: Optional[str] = None):
        self.status = status
        self.url = url
        self.body_hint = body_hint
        super().__init__(message)


class NotFoundError(HTTPStatusError):
    """404: the app, cluster or namespace has no release (or the URL is not a config service)."""


class AuthError(HTTPStatusError):
    """401/400 from the access-key filter."""


class StoreError(HotconfError):
    """The shared store could not take a snapshot (the message says what to change)."""


class SnapshotTooLargeError(StoreError):
    """The snapshot does not fit the uWSGI cache's blocksize."""


class ReloadError(HotconfError):
    """The reload could not be triggered; the message says why and what to check."""


__all__ = [
    "ApolloError", "AuthError", "ConfigUnavailableError", "ConfigValueError", "FormatError",
    "HTTPStatusError", "HotconfError", "InvalidValuesError", "MissingPartError", "NotFoundError",
    "ProtocolError", "ReloadError", "ResourceError", "SettingsError", "SnapshotTooLargeError",
    "StoreError", "TransportError", "UnknownNamespaceError", "ValueProblem",
]
