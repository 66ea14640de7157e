"""Lint check: ruff over the changed Python files, with the repository's own configuration."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version
from typing import Any

from codefactory.domain import Change, CheckResult, ExecResult, Finding, Severity
from codefactory.sandbox.layout import RUFF
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.findings import digest, fingerprinted
from codefactory.verify.port import Baseline, Cost
from codefactory.verify.sarif import to_sarif

PYTHON_SUFFIXES = (".py", ".pyi")


class RuffCheck:
    """Runs `ruff check` inside the sandbox; every violation in a changed file blocks.

    The gate compares with the same files at the base commit, so only violations the change
    introduced block the change.
    """

    name: str = "lint"
    baseline = Baseline.FILES
    cost = Cost.CHEAP

    def __init__(self, *, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s

    def config_digest(self) -> str:
        return digest("ruff", factory_version("ruff"), "lint-1")

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
        # counts, never its behaviour switches. --no-fix: a `fix = true` there would rewrite
        # the files and report nothing; no --force-exclude: an `exclude` must not hide a
        # file the change touched (issue 10).
        command = [RUFF, "check", "--no-cache", "--no-fix", "--output-format", "json"]
        result = workspace.exec(
            [*command, "--exit-zero", "--", *paths], phase=Phase.CHECK, timeout_s=self.timeout_s
        )
        try:
            findings = fingerprinted(parse_ruff_json(result, paths), change)
        except ValueError as exc:
            return self._could_not_run(str(exc), version)
        summary = f"{len(findings)} lint finding(s) in {len(paths)} changed Python file(s)"
        return self._result(findings, version, summary=summary)

    def _result(self, findings: list[Finding], version: str, *, summary: str) -> CheckResult:
        return CheckResult(
            check=self.name,
            passed=not any(f.blocking for f in findings),
            findings=tuple(findings),
            evidence_name="lint.sarif",
            evidence=to_sarif("ruff", version, findings),
            summary=summary,
        )

    def _could_not_run(self, reason: str, version: str) -> CheckResult:
        finding = Finding(
            check=self.name, rule="lint-could-not-run", message=reason, severity=Severity.HIGH
        )
        return self._result([finding], version, summary=f"ruff could not run: {reason}")


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
