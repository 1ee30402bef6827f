"""Apollo access-key signing (pure).

The config service recomputes the signature over the raw request path and raw query string it
received, so the client must sign exactly the bytes it puts on the wire: the caller passes the
already-encoded ``path?query``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Dict, Optional

AUTHORIZATION = "Authorization"
TIMESTAMP = "Timestamp"


def string_to_sign(timestamp_ms: int, path_with_query: str) -> str:
    return f"{timestamp_ms}\n{path_with_query}"


def signature(secret: str, timestamp_ms: int, path_with_query: str) -> str:
    """Base64(HMAC-SHA1(secret, timestamp + "\\n" + path?query)), standard alphabet, padded."""
    digest = hmac.new(
        secret.encode("utf-8"),
        string_to_sign(timestamp_ms, path_with_query).encode("utf-8"),
        hashlib.sha1,
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def auth_headers(
    app_id: str, secret: str, path_with_query: str, timestamp_ms: Optional[int] = None
) -> Dict[str, str]:
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return {
        AUTHORIZATION: f"Apollo {app_id}:{signature(secret, ts, path_with_query)}",
        TIMESTAMP: str(ts),
    }


def verify(secret: str, timestamp_ms: int, path_with_query: str, presented: str) -> bool:
    """Constant-time check of a presented signature (used by the dev server)."""
    expected = signature(secret, timestamp_ms, path_with_query)
    return hmac.compare_digest(expected.encode("ascii"), presented.encode("utf-8", "replace"))
