"""Run the repository's pytest under coverage and measure the changed lines: runs INSIDE the
sandbox, never imported by the factory.

`coverage_run.measuring_source()` prepends the lent-coverage finder to this file and runs it
with the repository's interpreter as `python -c SOURCE OUT CHANGED [PYTEST ARGS]`: CHANGED is
JSON `{path: [[first, last], ...]}` (the head's added or modified lines, inclusive ranges).

Coverage never reads the repository's configuration (`config_file=False`: no `.coveragerc`,
`setup.cfg`, `tox.ini` or `pyproject.toml` section) and excludes nothing (not even
`# pragma: no cover`), so neither can hide a changed line. Only the changed files are traced
(`include`), which keeps the cost of tracing low. The tests run exactly once, here: pytest's
exit code is this program's exit code, and a coverage that cannot start never stops them.

OUT gets JSON: `{"coverage": VERSION, "files": {path: {"statements": [...], "missing": [...],
"first_lines": {line: first}}}, "errors": {path: why}, "problem": why}`: `statements` and
`missing` as coverage.py's `analysis2` gives them (its JSON report's `executed_lines` are
the statements not missing), `first_lines` maps each changed line inside a statement that
spans several lines to the line coverage records it under (`FileReporter.translate_lines`).
"""

import json
import os
import sys
from typing import Any

import pytest

ROOT = os.getcwd()
GLOB_CHARACTERS = "*?["


def start_coverage(paths: list[str]) -> tuple[Any, list[str], str]:
    """(started Coverage or None, who else started one, why it did not start)."""
    try:
        import coverage
    except ImportError as exc:
        return None, [], f"coverage could not be imported: {exc}"
    others: list[str] = []
    original = coverage.Coverage.start

    def watched(self: Any) -> Any:
        # a second measurement (pytest-cov's --cov) pauses this one while it runs
        if self is not cov:
            others.append(type(self).__module__)
        return original(self)

    files = [os.path.join(ROOT, p) for p in paths]
    traced: dict[str, Any] = {"include": files}
    if any(c in p for p in files for c in GLOB_CHARACTERS):
        traced = {"source": [ROOT]}
    try:
        cov = coverage.Coverage(data_file=None, config_file=False, **traced)
        cov.clear_exclude()
        coverage.Coverage.start = watched  # type: ignore[method-assign]
        cov.start()
    except Exception as exc:  # noqa: BLE001 - the tests still run, unmeasured
        return None, [], f"coverage could not start: {type(exc).__name__}: {exc}"
    return cov, others, ""


def measure(cov: Any, path: str, lines: list[int]) -> dict[str, Any]:
    from coverage.python import PythonFileReporter

    absolute = os.path.join(ROOT, path)
    _, statements, _, missing, _ = cov.analysis2(absolute)
    reporter = PythonFileReporter(absolute, cov)
    first_lines = {}
    for line in lines:
        first = sorted(reporter.translate_lines([line]))
        if first and first[0] != line:
            first_lines[str(line)] = first[0]
    return {
        "statements": sorted(statements),
        "missing": sorted(missing),
        "first_lines": first_lines,
    }


class Workers:
    """Notes whether pytest-xdist runs the tests in worker processes, which coverage started
    here does not follow."""

    def __init__(self) -> None:
        self.distributed = False

    def pytest_configure(self, config: Any) -> None:
        dist = getattr(config.option, "dist", "no")
        self.distributed = bool(getattr(config.option, "numprocesses", None)) or dist not in (
            None,
            "no",
        )


def main() -> int:
    out, changed, pytest_args = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
    lines = {p: [n for a, b in spans for n in range(a, b + 1)] for p, spans in changed.items()}
    cov, others, problem = start_coverage(sorted(lines))
    workers = Workers()
    try:
        code = pytest.main(pytest_args, plugins=[workers])
    finally:
        if cov is not None:
            cov.stop()
    result: dict[str, Any] = {"files": {}, "errors": {}, "problem": problem}
    if cov is not None:
        import coverage

        result["coverage"] = coverage.__version__
        if workers.distributed:
            result["problem"] = (
                "the tests ran in pytest-xdist worker processes, which this measurement "
                "does not follow"
            )
        if others:
            result["problem"] = (
                f"another coverage measurement started inside the test run ({others[0]}, "
                "pytest-cov's --cov?): it pauses this one, so executed lines would be missed"
            )
        for path, wanted in sorted(lines.items()):
            try:
                result["files"][path] = measure(cov, path, wanted)
            except Exception as exc:  # noqa: BLE001 - named in the evidence, per file
                result["errors"][path] = f"{type(exc).__name__}: {exc}"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as stream:
        json.dump(result, stream, sort_keys=True)
    return int(code)


sys.exit(main())
