"""What a run's change package folder holds, read for the run page: the patch, risk,
rollback plan, CAB record, the summary's sections, provenance and the review statements.

Every read is capped (`MAX_BYTES`) and never follows a link out of the folder; a file that is
not there, not a regular file, too large or not the shape expected is `Missing(why)`, which
the page shows as "not in the package" (with why), never as an error page.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BYTES = 4 * 1024 * 1024
"""The most read of one package file (a patch larger than this is not shown)."""
RATIONALE_SECTIONS = ("Rationale (written by the engine)", "Context the engine was given")
"""The `summary.md` sections that make the design rationale."""


@dataclass(frozen=True)
class Missing:
    """A package file the page cannot show, and why (`not in the package`, `too large`…)."""

    why: str


def read_text(folder: str, name: str) -> str | Missing:
    """`folder/name` as UTF-8 text (undecodable bytes replaced), or `Missing`; `name` is a
    relative path inside the folder, read without following symbolic links."""
    if not folder:
        return Missing("the run has no package")
    path = Path(folder) / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return Missing("not in the package")
    except OSError as err:
        return Missing(f"not in the package ({err.strerror})")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return Missing("not in the package (not a regular file)")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > MAX_BYTES:
            return Missing(f"in the package, but too large to show ({info.st_size} bytes)")
        return handle.read(MAX_BYTES).decode("utf-8", "replace")


def read_json(folder: str, name: str) -> dict[str, Any] | Missing:
    """`folder/name` parsed as a JSON object, or `Missing`."""
    text = read_text(folder, name)
    if isinstance(text, Missing):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return Missing(f"in the package, but not JSON ({err.msg} at line {err.lineno})")
    if not isinstance(value, dict):
        return Missing("in the package, but not a JSON object")
    return value


def summary_sections(folder: str) -> dict[str, str] | Missing:
    """`summary.md` split at its `## ` headings: heading → the text under it."""
    text = read_text(folder, "summary.md")
    if isinstance(text, Missing):
        return text
    sections: dict[str, str] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            sections[heading] = ""
        elif heading:
            sections[heading] += line + "\n"
    return {name: body.strip("\n") for name, body in sections.items()}


def rationale(folder: str) -> list[tuple[str, str | Missing]] | Missing:
    """The design rationale: each of `RATIONALE_SECTIONS` with its text, or `Missing`."""
    sections = summary_sections(folder)
    if isinstance(sections, Missing):
        return sections
    return [
        (name, sections[name] if name in sections else Missing("not in the package's summary"))
        for name in RATIONALE_SECTIONS
    ]


def dsse_statement(folder: str, name: str) -> dict[str, Any] | Missing:
    """The in-toto statement inside the DSSE envelope `name` (its base64 `payload`), not
    verified here (`codefactory verify` does that): shown for the reviewer to read."""
    envelope = read_json(folder, name)
    if isinstance(envelope, Missing):
        return envelope
    try:
        statement = json.loads(base64.b64decode(str(envelope.get("payload", "")), validate=True))
    except (ValueError, json.JSONDecodeError):
        return Missing("in the package, but its payload is not base64 JSON")
    if not isinstance(statement, dict):
        return Missing("in the package, but its payload is not a JSON object")
    statement["payloadType"] = envelope.get("payloadType", "")
    statement["signatures"] = len(envelope.get("signatures") or [])
    return statement
