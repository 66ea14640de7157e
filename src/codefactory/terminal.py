"""Text for a terminal: what comes from the store, a payload or an error made inert before
Rich prints it.

Two things in such text could act on the terminal instead of being read: the control
characters of ECMA-48 (ESC and CSI sequences move the cursor, erase lines, recolour, retitle
the window; BEL rings), which Rich passes through, and Rich's own markup (`[conceal]`,
`[/]`), which Rich interprets. `printable` shows the first as escapes; `shown` does both, for
any text placed into a markup string (`console.print(f"run {shown(run.id)}")`).
"""

from __future__ import annotations

from rich.markup import escape

_REORDERING = (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)
"""Unicode's bidirectional embeddings, overrides and isolates (which make a terminal show text
in another order than it is: "Trojan Source", CVE-2021-42574) and the line and paragraph
separators."""
_SHOWN_AS_ESCAPES = {
    **{c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))},
    **{c: f"\\u{c:04x}" for c in (*range(0xD800, 0xE000), *_REORDERING)},
}
"""Every C0 and C1 control character but tab and line feed (ECMA-48: ESC, CSI, BEL, …), the
reordering characters (`_REORDERING`), and lone surrogates (text decoded from bytes that are
not UTF-8): each shown as its escape."""


def printable(text: str) -> str:
    """`text` with every control character but tab and line feed, every reordering
    character and every lone surrogate shown as its escape (`\\x1b`, `\\x9b`, `\\u202e`,
    `\\udcff`): it can then neither move the cursor, recolour, reorder or hide what the
    terminal shows, nor fail to print."""
    return text.translate(_SHOWN_AS_ESCAPES)


def shown(text: object) -> str:
    """`text` (or its `str`) as a markup string prints it: `printable`, then Rich's markup
    escaped (`rich.markup.escape`)."""
    return escape(printable(str(text)))


_JSON_ESCAPED = {c: f"\\u{c:04x}" for c in (*range(0x7F, 0xA0), *_REORDERING)}


def inert_json(text: str) -> str:
    """JSON text (RFC 8259) with DEL, the C1 controls and the reordering characters written
    as `\\u` escapes: the same JSON value, but a terminal cannot act on them (JSON leaves them
    raw; U+009B is CSI, what ESC [ is). Outside strings JSON text is ASCII, so only strings
    change."""
    return text.translate(_JSON_ESCAPED)
