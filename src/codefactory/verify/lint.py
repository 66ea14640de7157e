"""Lint check: ruff over the changed Python files, with the repository's own rule selection.

The repository's ruff configuration (`pyproject.toml`, `ruff.toml`) chooses the rules; it
never chooses how ruff behaves here. Each behaviour switch a configuration can set is
overridden on the command line (`READ_ONLY`): `fix`, `fix-only` and `unsafe-fixes` would
rewrite the files and report nothing, `show-fixes` changes the output, `force-exclude`
(with `exclude`, `extend-exclude`, `lint.exclude` or `.gitignore`) would hide a file the change
touched. The target version is the project's (`--target-version`), so syntax newer than the
factory's own Python is read as the project writes it and syntax older than the project
allows is reported; without one, ruff reads `requires-python` itself.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version
from typing import Any

from codefactory.domain import Change, CheckResult, ExecResult, Finding, Severity
from codefactory.projects import Ecosystem
from codefactory.sandbox.layout import RUFF
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.findings import digest, fingerprinted
from codefactory.verify.port import Baseline, Cost
from codefactory.verify.project import ProjectBound
from codefactory.verify.sarif import could_not_run, scan_result

PYTHON_SUFFIXES = (".py", ".pyi")
READ_ONLY = (
    "--no-cache",
    "--no-fix",
    "--no-fix-only",
    "--no-unsafe-fixes",
    "--no-show-fixes",
    "--no-force-exclude",
)
"""ruff options that override every configuration switch able to write or hide a file."""
TARGET_VERSION = re.compile(r"py3\d{1,2}")


class RuffCheck(ProjectBound):
    """Runs `ruff check` inside the sandbox; every violation in a changed file blocks.

    The gate compares with the same files at the base commit, so only violations the change
    introduced block the change.
    """

    name: str = "lint"
    baseline = Baseline.FILES
    cost = Cost.CHEAP
    ecosystems = frozenset({Ecosystem.PYTHON})

    def __init__(self, *, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s

    def config_digest(self) -> str:
        return digest("ruff", factory_version("ruff"), "lint-2")

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Lint the Python files the change added or modified (deleted files are gone)."""
        paths = [
            f.path
            for f in change.files
            if f.content is not None and f.path.endswith(PYTHON_SUFFIXES)
        ]
        version = factory_version("ruff")
        if not paths:
            return self._result([], version, summary="no Python files changed")
        # ruff finds the repository's pyproject.toml / ruff.toml itself: its rule selection
        # counts, never its behaviour switches (READ_ONLY; issue 10).
        target = self.project_of(workspace).python
        command = [RUFF, "check", *READ_ONLY, "--output-format", "json", "--exit-zero"]
        command += target_version_options(target.target_version if target else None)
        result = workspace.exec(
            [*command, "--", *paths], phase=Phase.CHECK, timeout_s=self.timeout_s
        )
        try:
            findings = fingerprinted(parse_ruff_json(result, paths), change)
        except ValueError as exc:
            return self._could_not_run(str(exc), version)
        summary = f"{len(findings)} lint finding(s) in {len(paths)} changed Python file(s)"
        return self._result(findings, version, summary=summary)

    def _result(self, findings: list[Finding], version: str, *, summary: str) -> CheckResult:
        return scan_result(self.name, "ruff", version, findings, summary=summary)

    def _could_not_run(self, reason: str, version: str) -> CheckResult:
        return could_not_run(self.name, "ruff", version, reason)


def target_version_options(target: str | None) -> list[str]:
    """`--target-version pyXY` for the project's lowest Python; nothing when unknown (ruff
    then reads `requires-python`, else its configuration's `target-version`)."""
    if target is None or not TARGET_VERSION.fullmatch(target):
        return []
    return ["--target-version", target]


def factory_version(distribution: str) -> str:
    """The version of a tool installed with the factory (and lent to the sandbox)."""
    try:
        return distribution_version(distribution)
    except PackageNotFoundError:
        return "unknown"


def parse_ruff_json(result: ExecResult, paths: list[str]) -> list[Finding]:
    """Findings from ruff's JSON output; ValueError when ruff failed or its output is not it."""
    if result.timed_out:
        raise ValueError("ruff did not finish in time")
    if result.exit_code != 0:
        raise ValueError(f"ruff exited {result.exit_code}: {_tail(result)}")
    try:
        items = json.loads(result.stdout)
        return [_finding(item, paths) for item in items]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"ruff's output is not the JSON expected ({exc!r})") from exc


def _finding(item: dict[str, Any], paths: list[str]) -> Finding:
    return Finding(
        check="lint",
        rule=str(item["code"] or item.get("name") or "invalid-syntax"),
        message=str(item["message"]),
        severity=Severity.MEDIUM,
        path=changed_path(str(item["filename"]), paths),
        line=int(item["location"]["row"]),
        blocking=True,
    )


def changed_path(filename: str, paths: list[str]) -> str:
    """Map ruff's absolute file name back onto the changed path it names."""
    matches = [p for p in paths if filename == p or filename.endswith("/" + p)]
    return max(matches, key=len) if matches else filename


def _tail(result: ExecResult) -> str:
    return (result.stderr.strip() or result.stdout.strip() or "no output")[-1000:]
