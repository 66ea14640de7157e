"""Coverage of the changed lines: which lines the change adds or modifies, which of them are
executable statements, and which the tests executed. Evidence for QA, never a gate by itself.

The document (`evidence/coverage.json` in the package, format `codefactory.changed-coverage/1`):

    {"format": "codefactory.changed-coverage/1",
     "status": "measured" | "not-measured",
     "reason": "why it was not measured" (empty when measured),
     "tool": "coverage.py 7.6.1", "scope": "which tests ran",
     "files": {"pkg/a.py": {"changed_lines": [3, 4, 9], "executable": [3, 9],
                            "covered": [3], "missed": [9], "percent": 50.0}},
     "not_measured": {"README.md": "not Python source"},
     "totals": {"changed_lines": 3, "executable": 2, "covered": 1, "missed": 1,
                "percent": 50.0},
     "notes": ["..."]}

Line numbers are 1-based lines of the head (the change's new version). `changed_lines` are
the lines the diff adds or modifies (`diff.added_lines`); `executable` those of them inside a
statement coverage.py counts (a line of a statement written over several lines counts when
its statement does); `covered` the executable ones whose statement ran; `missed` the rest.
coverage.py's JSON report calls the same per-file sets `executed_lines` and `missing_lines`
(<https://coverage.readthedocs.io/en/latest/cmd.html#json-reporting>); here they are kept to
the changed lines. `percent` is covered / executable × 100, rounded to two places, and
`null` when no changed line is executable: nothing executable is not 100 %.

A check carries the document to the package inside its JUnit report, as the property
`codefactory.changed_coverage` (JUnit's place for facts about a run), since a check has one
evidence file.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # noqa: S405 - the report is parsed as junit.py explains
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from codefactory.domain import Change, CheckResult
from codefactory.verify.diff import added_lines
from codefactory.verify.junit import NOT_XML_CHAR

FORMAT = "codefactory.changed-coverage/1"
PROPERTY = "codefactory.changed_coverage"
TESTS_CHECK = "tests"
NOTHING_TO_MEASURE = "the change adds or modifies no line of Python source outside the tests"
MISSED_SHOWN = 20
"""How many missed lines the one-line summary names before `and N more`."""


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """What coverage.py said about one changed file: its statements (first lines), those it
    did not see run, and the first line of each changed line inside a multi-line statement."""

    changed: tuple[int, ...]
    statements: frozenset[int]
    missing: frozenset[int]
    first_lines: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class FileCoverage:
    """One changed file's lines: changed, executable, covered and missed (sorted, 1-based)."""

    changed_lines: tuple[int, ...]
    executable: tuple[int, ...]
    covered: tuple[int, ...]
    missed: tuple[int, ...]

    @property
    def percent(self) -> float | None:
        return percent(len(self.covered), len(self.executable))


@dataclass(frozen=True, kw_only=True)
class ChangedCoverage:
    """The coverage of a change's lines by its tests, or why it was not measured."""

    status: str
    reason: str = ""
    tool: str = ""
    scope: str = ""
    files: Mapping[str, FileCoverage] = field(default_factory=dict)
    not_measured: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def measured(self) -> bool:
        return self.status == "measured"

    def totals(self) -> dict[str, Any]:
        counts = {
            name: sum(len(getattr(f, name)) for f in self.files.values())
            for name in ("changed_lines", "executable", "covered", "missed")
        }
        return {**counts, "percent": percent(counts["covered"], counts["executable"])}

    def to_json(self) -> str:
        """The document described in the module docstring, indented."""
        body = {
            "format": FORMAT,
            "status": self.status,
            "reason": self.reason,
            "tool": self.tool,
            "scope": self.scope,
            "files": {path: _file_json(f) for path, f in sorted(self.files.items())},
            "not_measured": dict(sorted(self.not_measured.items())),
            "totals": self.totals() if self.measured else None,
            "notes": list(self.notes),
        }
        return json.dumps(body, indent=2, ensure_ascii=False) + "\n"

    def summary_line(self) -> str:
        """`changed lines covered: 7 of 9 (77.78%); missed: a.py:12, 14` or `... not measured
        (why)`: the line QA reads in `summary.md` and the CAB record's test plan."""
        if not self.measured:
            return f"changed lines covered: not measured ({self.reason})"
        totals = self.totals()
        if not totals["executable"]:
            return "changed lines covered: none of the changed lines is an executable statement"
        line = f"changed lines covered: {totals['covered']} of {totals['executable']} "
        line += f"({totals['percent']:g}%)"
        missed = missed_text(self.files)
        return line + (f"; missed: {missed}" if missed else "")


def percent(covered: int, executable: int) -> float | None:
    return round(100.0 * covered / executable, 2) if executable else None


def file_coverage(measurement: Measurement) -> FileCoverage:
    """The line arithmetic of one file: a changed line is executable when the statement it
    belongs to is one of coverage's statements, covered when that statement is not missing."""
    executable: list[int] = []
    covered: list[int] = []
    for line in sorted(set(measurement.changed)):
        first = measurement.first_lines.get(line, line)
        if first not in measurement.statements:
            continue
        executable.append(line)
        if first not in measurement.missing:
            covered.append(line)
    return FileCoverage(
        changed_lines=tuple(sorted(set(measurement.changed))),
        executable=tuple(executable),
        covered=tuple(covered),
        missed=tuple(n for n in executable if n not in covered),
    )


def measured(
    found: Mapping[str, Measurement],
    *,
    skipped: Mapping[str, str] | None = None,
    tool: str = "",
    scope: str = "",
    notes: Sequence[str] = (),
) -> ChangedCoverage:
    return ChangedCoverage(
        status="measured",
        tool=tool,
        scope=scope,
        files={path: file_coverage(m) for path, m in found.items()},
        not_measured=dict(skipped or {}),
        notes=tuple(notes),
    )


def not_measured(reason: str, *, skipped: Mapping[str, str] | None = None) -> ChangedCoverage:
    return ChangedCoverage(status="not-measured", reason=reason, not_measured=dict(skipped or {}))


def changed_lines(change: Change, path: str) -> tuple[int, ...]:
    """The head's lines of `path` the change adds or modifies; every line when its base
    version is unknown (a plain `Change`)."""
    lines = added_lines(change, path)
    if lines is None:
        content = next((f.content for f in change.files if f.path == path), None) or b""
        lines = set(range(1, len(content.splitlines()) + 1))
    return tuple(sorted(lines))


def spans(lines: Iterable[int]) -> list[list[int]]:
    """Sorted lines as inclusive ranges: [1, 2, 3, 7] → [[1, 3], [7, 7]]."""
    out: list[list[int]] = []
    for line in sorted(set(lines)):
        if out and out[-1][1] == line - 1:
            out[-1][1] = line
        else:
            out.append([line, line])
    return out


def missed_text(files: Mapping[str, FileCoverage], limit: int = MISSED_SHOWN) -> str:
    """`a.py:12, 14; b.py:3`, the first `limit` missed lines, then `(and N more)`."""
    parts: list[str] = []
    shown = 0
    total = sum(len(f.missed) for f in files.values())
    for path, entry in sorted(files.items()):
        lines = entry.missed[: max(0, limit - shown)]
        if lines:
            parts.append(f"{path}:{', '.join(map(str, lines))}")
            shown += len(lines)
    more = f" (and {total - shown} more)" if total > shown else ""
    return "; ".join(parts) + more


def _file_json(entry: FileCoverage) -> dict[str, Any]:
    return {
        "changed_lines": list(entry.changed_lines),
        "executable": list(entry.executable),
        "covered": list(entry.covered),
        "missed": list(entry.missed),
        "percent": entry.percent,
    }


def from_json(text: str) -> ChangedCoverage:
    """The document back (ValueError when it is not one): what the package reads."""
    body = json.loads(text)
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    files = {
        str(path): FileCoverage(
            changed_lines=_lines(entry["changed_lines"]),
            executable=_lines(entry["executable"]),
            covered=_lines(entry["covered"]),
            missed=_lines(entry["missed"]),
        )
        for path, entry in dict(body["files"]).items()
    }
    for path, entry in files.items():
        if not _consistent(entry):
            raise ValueError(f"{path}: covered and missed do not add up to executable")
    status = str(body["status"])
    if status not in ("measured", "not-measured"):
        raise ValueError(f"unknown status {status!r}")
    return ChangedCoverage(
        status=status,
        reason=str(body.get("reason", "")),
        tool=str(body.get("tool", "")),
        scope=str(body.get("scope", "")),
        files=files,
        not_measured={str(k): str(v) for k, v in dict(body.get("not_measured") or {}).items()},
        notes=tuple(str(n) for n in body.get("notes") or ()),
    )


def _consistent(entry: FileCoverage) -> bool:
    """Covered and missed split the executable lines, which are changed lines."""
    covered, missed = set(entry.covered), set(entry.missed)
    return (
        not covered & missed
        and covered | missed == set(entry.executable)
        and set(entry.executable) <= set(entry.changed_lines)
    )


def _lines(values: Any) -> tuple[int, ...]:
    if not isinstance(values, list) or not all(type(v) is int and v > 0 for v in values):
        raise ValueError("line numbers are not a list of positive integers")
    return tuple(values)


def with_changed_coverage(result: CheckResult, coverage: ChangedCoverage) -> CheckResult:
    """`result` with the document added to its JUnit report's first `<properties>` (the one
    `junit.with_properties` put first in the first suite); a report that cannot carry it
    is returned as it is, and the package then says the coverage was not measured."""
    try:
        root = ET.fromstring(result.evidence)  # noqa: S314 - see junit.py
    except ET.ParseError:
        return result
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    holder = suite.find("properties") if suite is not None else None
    if holder is None:
        return result
    value = NOT_XML_CHAR.sub("?", json.dumps(json.loads(coverage.to_json()), sort_keys=True))
    ET.SubElement(holder, "property", name=PROPERTY, value=value)
    body = ET.tostring(root, encoding="unicode")
    return replace(result, evidence=f'<?xml version="1.0" encoding="utf-8"?>\n{body}\n')


def changed_coverage_of(results: Sequence[CheckResult]) -> ChangedCoverage:
    """The coverage of the changed lines that the tests check recorded in its report, or why
    there is none: never a silent pass, never a number nobody measured."""
    tests = [r for r in results if r.check == TESTS_CHECK]
    if not tests:
        return not_measured("no Python test check ran on this change")
    result = tests[0]
    if result.skipped:
        return not_measured(f"the Python tests did not run: {result.summary}")
    values = _property_values(result.evidence)
    if len(values) != 1:
        why = "recorded none" if not values else "recorded it more than once"
        return not_measured(f"the tests check {why} (its result: {result.summary[:300]})")
    try:
        return from_json(values[0])
    except (ValueError, TypeError, KeyError) as exc:
        return not_measured(f"the recorded coverage is unreadable ({exc})")


def _property_values(evidence: str) -> list[str]:
    """Every value of the property in the first suite's first `<properties>` (ours)."""
    try:
        root = ET.fromstring(evidence)  # noqa: S314 - see junit.py
    except ET.ParseError:
        return []
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    holder = suite.find("properties") if suite is not None else None
    if holder is None:
        return []
    return [p.get("value", "") for p in holder.findall("property") if p.get("name") == PROPERTY]
