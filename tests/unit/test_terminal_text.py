"""Text for a terminal made inert (`codefactory.terminal`): ECMA-48 controls, the reordering
characters of "Trojan Source" (CVE-2021-42574) and lone surrogates become escapes in what
commands print, and JSON output stays the same JSON value with nothing a terminal acts on."""

from __future__ import annotations

import json

import pytest

from codefactory.terminal import inert_json, printable, shown

ACTING = [
    "\x1b",
    "\x07",
    "\x7f",
    "\x85",
    "\x9b",
    "\u202a",
    "\u202e",
    "\u2066",
    "\u2069",
    "\u2028",
    "\u2029",
]


@pytest.mark.parametrize("char", ACTING)
def test_what_acts_on_a_terminal_is_printed_as_its_escape(char: str) -> None:
    printed = printable(f"run {char}done")
    assert char not in printed and printed.startswith("run \\") and printed.endswith("done")
    assert char not in shown(f"[bold]{char}")


def test_ordinary_text_tab_newline_and_right_to_left_letters_are_kept() -> None:
    text = "Priya Shah\tשלום مرحبا\nnext"
    assert printable(text) == text


@pytest.mark.parametrize("char", ACTING)
def test_json_keeps_its_value_and_loses_what_acts_on_a_terminal(char: str) -> None:
    document = {f"k{char}": [f"v{char}", "ünïcödé"]}
    text = inert_json(json.dumps(document, ensure_ascii=False))
    assert json.loads(text) == document
    assert char not in text and "ünïcödé" in text
