"""What a run's change package folder holds, shaped for the run page: the patch, risk,
rollback plan, CAB record, the summary's sections, provenance and the evidence.

Every function here takes a `Reader` (`package_check.PackageReading.read`): the bytes of one
package file, read once and verified against the package's manifest, or `Missing(why)` for a
file the page cannot show (not there, not a regular file, too large, not as it was built).
The page shows `Missing` as "not in the package" (with why), never as an error page.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_BYTES = 4 * 1024 * 1024
"""The most read of one package file (a patch larger than this is not shown)."""
RATIONALE_SECTIONS = ("Rationale (written by the engine)", "Context the engine was given")
"""The `summary.md` sections that make the design rationale."""


@dataclass(frozen=True)
class Missing:
    """A package file the page cannot show, and why (`not in the package`, `too large`…)."""

    why: str


Reader = Callable[[str], "bytes | Missing"]
"""The verified bytes of a path in the package (`evidence/lint.txt`), or `Missing`."""


def read_text(read: Reader, name: str) -> str | Missing:
    """`name` as UTF-8 text (undecodable bytes replaced), or `Missing`."""
    data = read(name)
    return data if isinstance(data, Missing) else data.decode("utf-8", "replace")


def read_json(read: Reader, name: str) -> dict[str, Any] | Missing:
    """`name` parsed as a JSON object, or `Missing`."""
    text = read_text(read, name)
    if isinstance(text, Missing):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return Missing(f"in the package, but not JSON ({err.msg} at line {err.lineno})")
    if not isinstance(value, dict):
        return Missing("in the package, but not a JSON object")
    return value


def summary_sections(read: Reader) -> dict[str, str] | Missing:
    """`summary.md` split at its `## ` headings: heading → the text under it."""
    text = read_text(read, "summary.md")
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


def rationale(read: Reader) -> list[tuple[str, str | Missing]] | Missing:
    """The design rationale: each of `RATIONALE_SECTIONS` with its text, or `Missing`."""
    sections = summary_sections(read)
    if isinstance(sections, Missing):
        return sections
    return [
        (name, sections[name] if name in sections else Missing("not in the package's summary"))
        for name in RATIONALE_SECTIONS
    ]


def dsse_statement(read: Reader, name: str) -> dict[str, Any] | Missing:
    """The in-toto statement inside the DSSE envelope `name` (its base64 `payload`), shown
    for the reviewer to read; its signature is checked by `package_check` (the issuer's
    attestation) and `SignedFacts` (the agent's provenance), and by `codefactory verify`."""
    envelope = read_json(read, name)
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
