"""Atlassian Document Format (ADF, the JSON of Jira Cloud REST v3 descriptions and comment
bodies) rendered to plain text an engine can read.

Blocks are separated by a blank line; lists are `- ` or `1. ` lines (nested ones indented);
code blocks are fenced with their language; headings carry `#` marks; table rows are their
cells joined by ` | `. Inline: a mention is `@Name`, a link `text (href)`, an emoji its
`:shortName:`, a card its URL, media `[attachment]`. A node type this module does not know is
rendered through its children, so a new Atlassian node loses its decoration, never its text.
Nothing raises: a malformed node renders as what can be read of it, and nesting deeper than
`MAX_DEPTH` is cut (a hostile document cannot exhaust the stack).
Shapes: https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

MAX_DEPTH = 48
"""Nesting deeper than this is not rendered (ADF itself nests lists a few levels)."""

_INLINE = frozenset(
    {
        "text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status",
        "mediaInline", "placeholder", "inlineExtension",
    }
)  # fmt: skip
"""Node types that flow within a line; everything else stands as a block of its own."""


def adf_to_text(doc: object) -> str:
    """Plain text of an ADF document (`{"type": "doc", "version": 1, "content": [...]}`),
    of any ADF node, or of a plain string (Jira REST v2 answers text); `""` for anything
    else."""
    if isinstance(doc, str):
        return doc.strip()
    text = _node(doc, 0)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _node(node: object, depth: int) -> str:
    if depth > MAX_DEPTH or not isinstance(node, dict):
        return ""
    kind = _kind(node)
    if kind in _INLINE:
        return _inline(node, depth)
    render = _BLOCKS.get(kind)
    if render is not None:
        return render(node, depth)
    return _children(node, depth)


def _kind(node: dict[str, Any]) -> str:
    found = node.get("type")
    return found if isinstance(found, str) else ""


def _content(node: dict[str, Any]) -> list[object]:
    found = node.get("content")
    return list(found) if isinstance(found, list) else []


def _attrs(node: dict[str, Any]) -> dict[str, Any]:
    found = node.get("attrs")
    return found if isinstance(found, dict) else {}


def _children(node: dict[str, Any], depth: int, separator: str = "\n\n") -> str:
    """Children in order: runs of inline nodes joined into one line, blocks apart."""
    parts: list[str] = []
    run: list[str] = []
    for child in _content(node):
        if isinstance(child, dict) and _kind(child) in _INLINE:
            run.append(_inline(child, depth + 1))
            continue
        if run:
            parts.append("".join(run))
            run = []
        parts.append(_node(child, depth + 1))
    if run:
        parts.append("".join(run))
    return separator.join(part for part in parts if part.strip())


def _inline(node: dict[str, Any], depth: int) -> str:
    kind = _kind(node)
    attrs = _attrs(node)
    if kind == "text":
        return _marked(str(node.get("text", "")), node.get("marks"))
    if kind == "hardBreak":
        return "\n"
    if kind == "mention":
        name = str(attrs.get("text") or attrs.get("id") or "someone")
        return "@" + name.removeprefix("@")
    if kind == "emoji":
        return str(attrs.get("shortName") or attrs.get("text") or "")
    if kind == "inlineCard":
        return _card_url(attrs)
    if kind == "date":
        return _date(attrs.get("timestamp"))
    if kind == "status":
        return f"[{attrs.get('text') or ''}]"
    if kind == "mediaInline":
        return "[attachment]"
    if kind == "placeholder":
        return ""
    return _children(node, depth, separator="")


def _marked(text: str, marks: object) -> str:
    """Text with its link (`text (href)`) and code (`` `text` ``) marks."""
    if not isinstance(marks, list):
        return text
    for mark in marks:
        if not isinstance(mark, dict):
            continue
        attrs = _attrs(mark)
        if mark.get("type") == "code":
            text = f"`{text}`"
        elif mark.get("type") == "link" and attrs.get("href") and attrs["href"] != text:
            text = f"{text} ({attrs['href']})"
    return text


def _card_url(attrs: dict[str, Any]) -> str:
    data = attrs.get("data")
    url = attrs.get("url") or (data.get("url") if isinstance(data, dict) else "")
    return str(url or "")


def _date(timestamp: object) -> str:
    """ADF dates are milliseconds since the epoch, as a string."""
    try:
        moment = datetime.fromtimestamp(int(str(timestamp)) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return moment.date().isoformat()


def _heading(node: dict[str, Any], depth: int) -> str:
    level = _attrs(node).get("level")
    marks = "#" * (level if isinstance(level, int) and 1 <= level <= 6 else 1)
    return f"{marks} {_children(node, depth, separator=' ')}"


def _paragraph(node: dict[str, Any], depth: int) -> str:
    return _children(node, depth, separator="\n")


def _list(node: dict[str, Any], depth: int) -> str:
    ordered = node.get("type") == "orderedList"
    start = _attrs(node).get("order")
    number = start if isinstance(start, int) else 1
    lines: list[str] = []
    for item in _content(node):
        text = _node(item, depth + 1)
        bullet = f"{number}. " if ordered else "- "
        number += 1
        lines.append(_hang(bullet, text))
    return "\n".join(lines)


def _list_item(node: dict[str, Any], depth: int) -> str:
    return _children(node, depth, separator="\n")


def _task(node: dict[str, Any], depth: int) -> str:
    box = "[x]" if _attrs(node).get("state") == "DONE" else "[ ]"
    return f"{box} {_children(node, depth, separator=' ')}"


def _hang(bullet: str, text: str) -> str:
    """`text` after `bullet`, its further lines indented under the first."""
    first, *rest = text.split("\n") if text else [""]
    indent = " " * len(bullet)
    return "\n".join([bullet + first, *(indent + line if line else line for line in rest)])


def _code_block(node: dict[str, Any], depth: int) -> str:
    language = _attrs(node).get("language")
    body = "".join(
        str(child.get("text", ""))
        for child in _content(node)
        if isinstance(child, dict) and child.get("type") == "text"
    )
    return f"```{language if isinstance(language, str) else ''}\n{body}\n```"


def _quote(node: dict[str, Any], depth: int) -> str:
    text = _children(node, depth)
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def _table(node: dict[str, Any], depth: int) -> str:
    rows: list[str] = []
    for row in _content(node):
        if not isinstance(row, dict) or depth + 1 > MAX_DEPTH:
            continue
        cells = [
            _children(cell, depth + 2, separator=" ").replace("\n", " ")
            for cell in _content(row)
            if isinstance(cell, dict)
        ]
        rows.append(" | ".join(cells))
    return "\n".join(rows)


def _media(node: dict[str, Any], depth: int) -> str:
    return "[attachment]"


def _card(node: dict[str, Any], depth: int) -> str:
    return _card_url(_attrs(node))


def _rule(node: dict[str, Any], depth: int) -> str:
    return "---"


def _expand(node: dict[str, Any], depth: int) -> str:
    title = _attrs(node).get("title")
    body = _children(node, depth)
    return f"{title}\n{body}" if isinstance(title, str) and title else body


_BLOCKS: dict[str, Callable[[dict[str, Any], int], str]] = {
    "paragraph": _paragraph,
    "heading": _heading,
    "bulletList": _list,
    "orderedList": _list,
    "taskList": _list,
    "listItem": _list_item,
    "taskItem": _task,
    "codeBlock": _code_block,
    "blockquote": _quote,
    "table": _table,
    "media": _media,
    "blockCard": _card,
    "embedCard": _card,
    "rule": _rule,
    "expand": _expand,
    "nestedExpand": _expand,
}
