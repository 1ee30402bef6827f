"""Masking (pure): what a value may look like in a log line, an error message or CLI output.

One rule for every place hotconf shows a value: values of secret-looking keys are replaced
entirely, and a password inside a URL (``postgresql://app:****@db/app``) is masked in any key.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional, Tuple
from urllib.parse import quote, unquote

MASK = "****"

_SECRET = re.compile(r"pass(word|wd)?|pwd|secret|token|credential|(^|[._-])key$|private|"
                     r"api[._-]?key", re.IGNORECASE)
_CAMEL_KEY = re.compile(r"[a-z0-9]Key$")  # aesKey, signingKey (not "monkey")
# user:password@host; the password may itself hold '@': up to the last '@' before the path
_URL_CREDENTIALS = re.compile(r"(://[^:/@\s]*:)[^/\s]+@")
# a libpq-style DSN or a driver's keyword list: password=... (quoted or not)
_KEYWORD_PASSWORD = re.compile(r"""(\b(?:password|passwd|pwd)\s*[=:]\s*)('[^']*'|"[^"]*"|[^\s;,&)'"]+)""",
                               re.IGNORECASE)


def is_secret(key: str) -> bool:
    """Keys whose values never go to a log: password, secret, token, *key, credential..."""
    return bool(_SECRET.search(key) or _CAMEL_KEY.search(key))


def mask(key: str, value: Optional[str]) -> Optional[str]:
    """The value as it may be shown: secret-looking keys entirely, passwords inside URLs in any
    key."""
    if value is None:
        return None
    if is_secret(key):
        return MASK
    return mask_text(value)


def mask_text(text: str) -> str:
    """Passwords inside URLs, and ``password=...`` pairs, masked in free text (an exception's
    message, a log line)."""
    text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + MASK + "@", text)
    return _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + MASK, text)


def mask_values_in(text: str, values: Iterable[Tuple[str, Optional[str]]]) -> str:
    """``text`` (a factory's exception message, say) with the secrets among ``values`` masked
    wherever they appear: values of secret-looking keys and passwords inside URL values, as
    written and URL-encoded, plus passwords inside any URL of the text itself."""
    secrets = set()
    for key, value in values:
        if not value:
            continue
        if is_secret(key):
            secrets.add(value)
        for match in _URL_CREDENTIALS.finditer(value):
            secrets.add(value[match.end(1):match.end() - 1])
    for secret in list(secrets):
        secrets.update({quote(secret, safe=""), unquote(secret)})
    text = mask_text(text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        if len(secret) < 3:  # a one- or two-character secret: whole words only, not every 'a'
            text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", MASK, text)
        else:
            text = text.replace(secret, MASK)
    return text
