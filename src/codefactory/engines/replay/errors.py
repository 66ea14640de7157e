"""Errors of the replay upstream.

TranscriptError (ValueError)   a transcript file is missing, unreadable or malformed
"""

from __future__ import annotations

from pathlib import Path


class TranscriptError(ValueError):
    """A transcript (cassette or script) that cannot be replayed, with where and why.

    `path` is the file, `step` the 0-based index of the script step or cassette interaction
    at fault (None when the fault is in the document as a whole; `item` names which of the
    two it is), `detail` what is wrong.
    """

    def __init__(
        self, path: Path, detail: str, *, step: int | None = None, item: str = "step"
    ) -> None:
        self.path = path
        self.step = step
        self.detail = detail
        where = f"{path}" if step is None else f"{path}: {item} {step}"
        super().__init__(f"{where}: {detail}")
