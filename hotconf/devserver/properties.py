"""Reading and writing Java ``.properties`` text (enough of the format for config files)."""

from __future__ import annotations

import re
from typing import Dict, Iterator, List

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # Java's, not str.splitlines()'s long list
_WS = " \t\f"

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> Iterator[str]:
    buf = ""
    for raw in _LINE_BREAK.split(text):
        line = raw.lstrip(_WS) if buf else raw
        if not buf and (not line.strip(_WS) or line.lstrip(_WS)[:1] in ("#", "!")):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:  # an odd number of backslashes continues the line
            buf += line[:-1]
            continue
        yield (buf + line).lstrip(_WS)
        buf = ""
    if buf:
        yield buf.lstrip(_WS)


def _unescape(text: str) -> str:
    out: List[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and i + 6 <= len(text):
                try:
                    out.append(chr(int(text[i + 2:i + 6], 16)))
                    i += 6
                    continue
                except ValueError:
                    pass
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_properties(text: str) -> Dict[str, str]:
    result: Dict[str, str] = {}
    for line in _logical_lines(text):
        i = 0
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=: \t\f":
                break
            i += 1
        key = line[:i]
        rest = line[i:].lstrip(" \t\f")
        if rest[:1] in ("=", ":") and (i >= len(line) or line[i] in " \t\f=:"):
            rest = rest[1:].lstrip(" \t\f")
        result[_unescape(key)] = _unescape(rest)
    return result


def _escape(text: str, is_key: bool) -> str:
    out = []
    for idx, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[ch])
        elif ch in "=:#!" or (ch == " " and (is_key or idx == 0)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def format_properties(values: Dict[str, str]) -> str:
    return "".join(f"{_escape(k, True)}={_escape(v, False)}\n" for k, v in values.items())
