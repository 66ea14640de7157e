"""The change's patch as a reviewer reads it: files, hunks and lines, each line highlighted
by Pygments' `DiffLexer`, with the checks' findings placed under the changed line they name.

The patch is git's unified diff (`change.patch`); a finding is placed by its path and its line
in the new file (`Finding.line`, 1-based). Only added lines count as changed: a finding on an
unchanged line of a touched file, or in a file the change does not touch, is listed apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from markupsafe import Markup
from pygments import highlight  # type: ignore[import-untyped]
from pygments.formatters import HtmlFormatter  # type: ignore[import-untyped]
from pygments.lexers import DiffLexer  # type: ignore[import-untyped]

from codefactory.domain import Finding

MAX_LINES = 5_000
"""Lines of the patch shown; a longer patch is cut there and says so."""
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(kw_only=True)
class DiffLine:
    """One line of the patch: its numbers in the old and new file (0: none), its highlighted
    HTML, and the findings located on it."""

    old: int
    new: int
    kind: str
    """`add`, `del`, `context`, `hunk` or `header`."""
    html: Markup
    findings: list[Finding] = field(default_factory=list)


@dataclass(kw_only=True)
class DiffFile:
    """One file of the patch: its path in the new tree and its lines."""

    path: str
    lines: list[DiffLine] = field(default_factory=list)

    @property
    def added(self) -> set[int]:
        """The new-file line numbers this change added."""
        return {line.new for line in self.lines if line.kind == "add"}


@dataclass(frozen=True, kw_only=True)
class Diff:
    """The parsed patch, the findings placed in it, those outside its changed lines."""

    files: tuple[DiffFile, ...]
    outside: tuple[Finding, ...]
    truncated: int
    """Lines of the patch not shown (0: all shown)."""


@cache
def _formatter() -> Any:
    return HtmlFormatter(nowrap=True)


def highlighted(line: str) -> Markup:
    """One patch line as HTML spans of Pygments' short classes (`gi` inserted, `gd` deleted,
    `gu` hunk header, `gh`/`gs` file headers); Pygments escapes the text."""
    html = str(highlight(line + "\n", DiffLexer(), _formatter())).rstrip("\n")
    return Markup(html)  # Pygments' HtmlFormatter escapes every token


def _path_of(header: str) -> str:
    """The new path of a `+++ b/path` line (`/dev/null` for a deleted file)."""
    name = header[4:].split("\t", 1)[0].strip()
    return name[2:] if name.startswith("b/") else name


def parse_patch(patch: str) -> tuple[list[DiffFile], int]:
    """The files of a unified diff, at most `MAX_LINES` lines; and how many were cut. A
    hunk's lines are counted from its header (`@@ -a,b +c,d @@`), so a removed line that
    reads `--- x` is a removed line, not a file header."""
    files: list[DiffFile] = []
    current: DiffFile | None = None
    old = new = old_left = new_left = 0
    lines = patch.splitlines()
    for text in lines[:MAX_LINES]:
        if text.startswith("diff --git ") or current is None:
            current = DiffFile(path=text.rsplit(" b/", 1)[-1] if " b/" in text else "")
            files.append(current)
            old_left = new_left = 0
        kind, number_old, number_new = "header", 0, 0
        hunk = HUNK.match(text)
        if old_left or new_left:
            if text.startswith("+"):
                kind, number_new, new, new_left = "add", new, new + 1, new_left - 1
            elif text.startswith("-"):
                kind, number_old, old, old_left = "del", old, old + 1, old_left - 1
            elif not text.startswith("\\"):  # `\ No newline at end of file` is a note
                kind, number_old, number_new = "context", old, new
                old, new, old_left, new_left = old + 1, new + 1, old_left - 1, new_left - 1
        elif hunk:
            kind, old, new = "hunk", int(hunk.group(1)), int(hunk.group(3))
            old_left, new_left = _count(hunk.group(2)), _count(hunk.group(4))
        elif text.startswith("+++ ") and _path_of(text) != "/dev/null":
            current.path = _path_of(text)
        current.lines.append(
            DiffLine(old=number_old, new=number_new, kind=kind, html=highlighted(text))
        )
    return files, max(0, len(lines) - MAX_LINES)


def _count(length: str | None) -> int:
    """A hunk range's line count: absent means 1 (GNU diff's unified format)."""
    return 1 if length is None else int(length)


def place_findings(files: Sequence[DiffFile], findings: Iterable[Finding]) -> list[Finding]:
    """Attach each finding to the added line it names; returns those that name none."""
    by_place = {(f.path, line.new): line for f in files for line in f.lines if line.kind == "add"}
    outside: list[Finding] = []
    for finding in findings:
        line = by_place.get((finding.path, finding.line))
        if line is None:
            outside.append(finding)
        else:
            line.findings.append(finding)
    return outside


def diff_view(patch: str, findings: Iterable[Finding]) -> Diff:
    """The patch parsed and highlighted, with `findings` placed in its changed lines."""
    files, cut = parse_patch(patch)
    outside = place_findings(files, findings)
    return Diff(files=tuple(files), outside=tuple(outside), truncated=cut)
