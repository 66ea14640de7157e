"""The refused-character scan (triggers/text.py) runs as a regular expression: it must refuse
exactly the code points whose Unicode category is refused, at the index the old per-character
loop named, keeping what a body may keep."""

from __future__ import annotations

import sys
import unicodedata

from codefactory.triggers.text import (
    ASCII_REFUSED,
    BODY_KEEPS,
    REFUSED_CATEGORIES,
    _refused_pattern,
    refused_character,
)


def test_the_scan_refuses_exactly_the_refused_categories() -> None:
    pattern = _refused_pattern()
    for point in range(sys.maxunicode + 1):
        char = chr(point)
        refused = unicodedata.category(char) in REFUSED_CATEGORIES
        assert bool(pattern.fullmatch(char)) is refused, f"U+{point:04X}"
        if point < 128:
            assert bool(ASCII_REFUSED.fullmatch(char)) is refused, f"U+{point:04X}"


def test_the_reason_names_the_first_refused_character_not_kept() -> None:
    assert refused_character("plain title") == ""
    assert refused_character("a\nb") == "character 1 is a control character (U+000A)"
    assert refused_character("a\nb\u200bc", keep=BODY_KEEPS) == (
        "character 3 is a format character (zero-width or bidirectional) (U+200B)"
    )
    assert (
        refused_character("é\u2028", keep=BODY_KEEPS) == "character 1 is a line separator (U+2028)"
    )
    assert refused_character("x" * 1_000_000 + "\t\r\n", keep=BODY_KEEPS) == ""
