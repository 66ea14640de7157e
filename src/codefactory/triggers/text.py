"""Untrusted one-line text from a trigger (ids, titles, names, labels, sender identities):
refused at intake when it carries characters that could forge structure downstream.

A newline in a ticket key becomes a commit trailer (`On-Behalf-Of:`), a zero-width space
makes two names print alike, a bidirectional override reorders what a reviewer reads.
Refused: control characters (Unicode category Cc, newlines and tabs included), format
characters (Cf: zero-width, bidirectional controls), line and paragraph separators (Zl, Zp).
Bodies are multi-line text and may keep `\\n`, `\\r` and `\\t` (`keep`).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "a format character (zero-width or bidirectional)",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
BODY_KEEPS = "\n\r\t"
"""What a multi-line body may keep of the refused characters."""


class TextRefused(ValueError):
    """`what` carries a refused character; the message names it by code point, never raw."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what} refused: {reason}")
        self.what = what
        self.reason = reason


def refused_character(value: str, *, keep: str = "") -> str:
    """Why `value` is refused (`character 3 is a control character (U+000A)`), or ""."""
    pattern = ASCII_REFUSED if value.isascii() else _refused_pattern()
    for found in pattern.finditer(value):
        char = found.group()
        if char not in keep:
            category = REFUSED_CATEGORIES[unicodedata.category(char)]
            return f"character {found.start()} is {category} (U+{ord(char):04X})"
    return ""


ASCII_REFUSED = re.compile("[\x00-\x1f\x7f]")
"""The refused characters an ASCII string can hold (all of category Cc)."""


@functools.cache
def _refused_pattern() -> re.Pattern[str]:
    """One character class of every code point in `REFUSED_CATEGORIES` (this Python's
    Unicode database), so a title or a mebibyte body is scanned in C: built on first use
    (about a tenth of a second), as runs of consecutive code points."""
    ranges: list[tuple[int, int]] = []
    for point in range(sys.maxunicode + 1):
        if unicodedata.category(chr(point)) in REFUSED_CATEGORIES:
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1] = (ranges[-1][0], point)
            else:
                ranges.append((point, point))
    members = "".join(
        re.escape(chr(first)) + ("-" + re.escape(chr(last)) if last > first else "")
        for first, last in ranges
    )
    return re.compile(f"[{members}]")


def check_line(value: str, *, what: str, keep: str = "") -> str:
    """`value` unchanged when it has no refused character; else `TextRefused`."""
    reason = refused_character(value, keep=keep)
    if reason:
        raise TextRefused(what, reason)
    return value


def shown(value: str, limit: int = 120) -> str:
    """`value` safe to quote in a reason or a terminal: non-printable characters escaped
    (`\\n`, `\\u200b`), at most `limit` characters."""
    escaped = "".join(
        char if char.isprintable() and not refused_character(char) else _escape(char)
        for char in value[: limit + 1]
    )
    return escaped[:limit] + ("…" if len(escaped) > limit else "")


def one_line(value: str, limit: int = 200) -> str:
    """`value` as one printable line for a commit subject, a trailer or a record field:
    refused characters escaped (`shown`), cut to `limit` characters, "(none)" when empty."""
    return shown(value.strip(), limit) or "(none)"


def _escape(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")
