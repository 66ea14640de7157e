"""Identity text the factory compares: refused when it could hide a difference, normalised
before any comparison.

Every identity (a person id, a GitHub login, a Jira account id, an OIDC subject, a reviewer
name) goes through `check_identity`: control, format (zero-width, bidi), surrogate, private
use, unassigned, line and paragraph separator characters are refused, because two names that
print alike must not compare differently. Comparison is on `normalized` text: Unicode NFKC,
then case-folded (Unicode Standard §3.13, UAX #15), so `Priya.Shah` and `ｐriya.shah` are one.
"""

from __future__ import annotations

import unicodedata

from codefactory.identity.errors import IdentityRefused

MAX_IDENTITY_LENGTH = 256
"""Longer identity text is refused: no sender's user name or subject is that long."""

# Unicode general categories refused anywhere in an identity.
REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "a format character (zero-width or bidirectional)",
    "Cs": "a surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


def check_identity(text: str, *, what: str = "identity") -> str:
    """`text` unchanged if it is a usable identity; raises `IdentityRefused` naming the first
    refused character (as U+XXXX, never the raw character) and `what` the text was."""
    if not text or not text.strip():
        raise IdentityRefused(what, "it is empty")
    if len(text) > MAX_IDENTITY_LENGTH:
        raise IdentityRefused(what, f"it is longer than {MAX_IDENTITY_LENGTH} characters")
    if text != text.strip():
        raise IdentityRefused(what, "it starts or ends with white space")
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category in REFUSED_CATEGORIES:
            raise IdentityRefused(
                what,
                f"character {index} is {REFUSED_CATEGORIES[category]} (U+{ord(char):04X})",
            )
    return text


def normalized(text: str, *, what: str = "identity") -> str:
    """The comparable form of an identity: checked, NFKC-normalised, case-folded, and checked
    again (a character like U+00B8 normalises to a leading space), so the form is stable:
    `normalized(normalized(x)) == normalized(x)`."""
    folded = unicodedata.normalize("NFKC", check_identity(text, what=what)).casefold()
    return check_identity(unicodedata.normalize("NFKC", folded), what=what)


def same_identity(first: str, second: str) -> bool:
    """Whether two identities name the same holder; False when either is refused or empty."""
    try:
        return normalized(first) == normalized(second)
    except IdentityRefused:
        return False
