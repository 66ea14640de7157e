"""Text as connectors hand it on: cut to a length with a visible mark."""

from __future__ import annotations


def clip(text: str, max_chars: int) -> tuple[str, bool]:
    """`text` cut to at most about `max_chars` characters, ending with a marked note of what
    was left out; `(text, truncated)`."""
    if len(text) <= max_chars:
        return text, False
    kept = text[:max_chars]
    return f"{kept}\n[truncated: {len(text) - max_chars} more characters not shown]", True
