"""Server-sent events framing (WHATWG HTML §9.2) and the splitting of text into deltas."""

from __future__ import annotations

import json
from typing import Any

PIECE = 16
"""Characters per streamed delta: several deltas for any real argument or sentence."""


def frame(data: Any, event: str | None = None) -> bytes:
    """One event: an optional `event:` line, one `data:` line of compact JSON (or the raw
    string `[DONE]`), and the blank line that ends it."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def pieces(text: str) -> list[str]:
    """`text` in consecutive slices of PIECE characters (one empty slice for empty text)."""
    return [text[start : start + PIECE] for start in range(0, len(text), PIECE)] or [""]
