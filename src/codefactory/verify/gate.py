"""The gate: every check, in order, over one workspace; one broken check never stops the run."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from codefactory.domain import Change, CheckResult, Finding, Severity
from codefactory.sandbox.port import Workspace
from codefactory.verify.port import Check
from codefactory.verify.sarif import to_sarif


class Gate:
    """Runs a fixed list of checks and returns one result per check, in the same order."""

    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks = tuple(checks)

    def run(self, workspace: Workspace, change: Change) -> list[CheckResult]:
        """Judge `change`; a check that raises becomes a failed `check-crashed` result."""
        return [self._run_one(check, workspace, change) for check in self.checks]

    def _run_one(self, check: Check, workspace: Workspace, change: Change) -> CheckResult:
        try:
            return check.run(workspace, change)
        except Exception as exc:  # noqa: BLE001 - a crashed check is a failed check, not a crash
            return crashed(check.name, exc)


def passed(results: Sequence[CheckResult]) -> bool:
    """Whether the change passes: every check passed, and at least one ran.

    No results is not a pass: a gate that checked nothing proves nothing.
    """
    return bool(results) and all(result.passed for result in results)


def crashed(check_name: str, exc: Exception) -> CheckResult:
    """The failed result standing in for a check that raised `exc`."""
    message = f"the {check_name} check crashed: {type(exc).__name__}: {exc}"
    finding = Finding(
        check=check_name, rule="check-crashed", message=message, severity=Severity.HIGH
    )
    return CheckResult(
        check=check_name,
        passed=False,
        findings=(finding,),
        evidence_name=f"{check_name}.sarif",
        evidence=to_sarif("codefactory", _own_version(), [finding]),
        summary=message,
    )


def _own_version() -> str:
    try:
        return version("codefactory")
    except PackageNotFoundError:
        return "unknown"
