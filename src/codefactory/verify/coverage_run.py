"""The tests check's one pytest run, under coverage, measuring the change's own lines.

The tests run once: instead of `python -m pytest ARGS`, the sandbox runs
`python -c SOURCE OUT CHANGED ARGS` (`scripts/measure_changed_lines.py` behind the
lent-coverage finder, as the test-map recorder runs), whose exit code is pytest's. What it
writes back is read here, checked against the change, and turned into `ChangedCoverage`.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from importlib.resources import files
from pathlib import PurePosixPath
from typing import Any

from codefactory.domain import Change
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.changed_coverage import (
    ChangedCoverage,
    Measurement,
    changed_lines,
    measured,
    not_measured,
    spans,
)
from codefactory.verify.diff import base_of
from codefactory.verify.lent import COVERAGE_FINDER
from codefactory.verify.suite_command import SuiteCommand

OUT_PATH = ".codefactory/changed-coverage.json"
"""Under `.codefactory/`, which the harvester never counts as part of a change."""
TEST_FILES = ("test_*.py", "*_test.py", "conftest.py")


def measuring_source() -> str:
    """The measuring program as one `python -c` source: the coverage finder, then the script."""
    script = files("codefactory.verify").joinpath("scripts", "measure_changed_lines.py")
    return COVERAGE_FINDER + script.read_text(encoding="utf-8")


def measuring_argv(
    command: SuiteCommand, pytest_args: list[str], wanted: Mapping[str, tuple[int, ...]]
) -> list[str]:
    """`python -c SOURCE OUT CHANGED ARGS` for a pytest `command`: its own interpreter when it
    names one (`python3.12 -m pytest`), else `/env`'s `python`."""
    program = PurePosixPath(command.argv[0]).name if command.argv else ""
    python = command.argv[0] if program.startswith("python") else "python"
    changed = json.dumps({path: spans(lines) for path, lines in sorted(wanted.items())})
    return [python, "-c", measuring_source(), OUT_PATH, changed, *pytest_args]


def python_lines(change: Change) -> tuple[dict[str, tuple[int, ...]], dict[str, str], list[str]]:
    """(changed lines of each measured file, why each other file is not measured, notes).

    Measured: Python source files the change adds or modifies, test files aside (their lines
    run as the tests themselves). A file whose base version is unknown counts every line as
    changed, and a note says so.
    """
    wanted: dict[str, tuple[int, ...]] = {}
    skipped: dict[str, str] = {}
    notes: list[str] = []
    for file in sorted(change.files, key=lambda f: f.path):
        path, name = file.path, PurePosixPath(file.path).name
        if file.content is None:
            continue  # deleted: no line of the head to run
        if not path.endswith(".py"):
            skipped[path] = "not Python source"
        elif any(fnmatch.fnmatchcase(name, glob) for glob in TEST_FILES):
            skipped[path] = "a test file: its lines run as the tests themselves"
        elif lines := changed_lines(change, path):
            wanted[path] = lines
            if not base_of(change, path)[0]:
                notes.append(f"{path}: the base version is unknown, every line counts as changed")
    return wanted, skipped, notes


def read_measurement(
    workspace: Workspace,
    wanted: Mapping[str, tuple[int, ...]],
    skipped: Mapping[str, str],
    *,
    scope: str,
    notes: list[str],
) -> ChangedCoverage:
    """The coverage of the changed lines from what the measuring program wrote; not measured
    (and why) when it wrote nothing usable. Its output comes from code under test: every
    field is checked."""
    raw = workspace.read_file(OUT_PATH, phase=Phase.CHECK)
    if raw is None:
        return not_measured("the measuring run wrote no coverage data", skipped=skipped)
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        problem = str(body.get("problem") or "")
        if problem:
            return not_measured(problem, skipped=skipped)
        found = _measurements(body, wanted)
    except (ValueError, TypeError, KeyError) as exc:
        return not_measured(f"the coverage data is malformed ({exc})", skipped=skipped)
    errors = body.get("errors") or {}
    unmeasured = dict(skipped)
    for path in wanted:
        if path not in found:
            unmeasured[path] = f"coverage could not analyse it: {errors.get(path, 'no data')}"
    return measured(
        found,
        skipped=unmeasured,
        tool=f"coverage.py {body.get('coverage', '?')}",
        scope=scope,
        notes=notes,
    )


def _measurements(
    body: dict[str, Any], wanted: Mapping[str, tuple[int, ...]]
) -> dict[str, Measurement]:
    found: dict[str, Measurement] = {}
    for path, entry in (body.get("files") or {}).items():
        if path not in wanted:
            raise ValueError(f"{path!r} was not asked for")
        found[path] = Measurement(
            changed=wanted[path],
            statements=frozenset(_ints(entry["statements"])),
            missing=frozenset(_ints(entry["missing"])),
            first_lines={int(k): int(v) for k, v in dict(entry["first_lines"]).items()},
        )
    return found


def _ints(values: Any) -> list[int]:
    if not isinstance(values, list) or not all(type(v) is int for v in values):
        raise ValueError("line numbers are not a list of integers")
    return values
