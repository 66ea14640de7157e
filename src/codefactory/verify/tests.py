"""Tests check: the repository's pytest suite, run inside the sandbox, judged by its JUnit report.

A suite that cannot run, collects nothing or does not finish is a failure, never a pass.
"""

from __future__ import annotations

from codefactory.domain import Change, CheckResult, ExecResult, Finding, Severity
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.errors import JunitUnparseable
from codefactory.verify.junit import JunitReport, parse_junit, synthesise_junit

# Under `.codefactory/`, which the harvester never counts as part of a change.
JUNIT_PATH = ".codefactory/junit.xml"
PYTEST = (
    "python",
    "-m",
    "pytest",
    "-q",
    "-p",
    "no:cacheprovider",
    # xunit1 adds `file` and `line` to each test case: findings can then point at the test
    "-o",
    "junit_family=xunit1",
    f"--junitxml={JUNIT_PATH}",
)
# pytest's exit codes (`pytest.ExitCode`)
TESTS_FAILED, INTERRUPTED, NO_TESTS = 1, 2, 5


class PytestCheck:
    """Runs the whole suite with the repository's `/env` interpreter; no network."""

    name: str = "tests"

    def __init__(self, timeout_s: float = 300.0) -> None:
        self.timeout_s = timeout_s

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Run the suite after the change; the JUnit report is the evidence."""
        # a stale report from an earlier round must never be read as this round's
        command = ["sh", "-c", f'rm -f {JUNIT_PATH} && exec "$@"', "sh", *PYTEST]
        result = workspace.exec(command, phase=Phase.CHECK, timeout_s=self.timeout_s)
        if result.timed_out:
            limit = f"the test suite did not finish within {self.timeout_s:g} s"
            return self._failed("tests-timed-out", limit, details=_tail(result))
        raw = workspace.read_file(JUNIT_PATH)
        xml = raw.decode("utf-8", "replace") if raw is not None else ""
        try:
            report = parse_junit(xml) if xml else None
        except JunitUnparseable as exc:
            return self._failed("tests-could-not-run", str(exc), details=_tail(result))
        if result.exit_code == NO_TESTS:
            message = "pytest collected no tests: a repository without tests cannot pass"
            return self._failed("no-tests", message, evidence=xml)
        return self._judge(result, report, xml)

    def _judge(self, result: ExecResult, report: JunitReport | None, xml: str) -> CheckResult:
        if report is None:
            message = f"pytest exited {result.exit_code} and wrote no JUnit report"
            if "No module named pytest" in result.stderr:
                message = "pytest is not installed in the repository's environment /env"
            return self._failed("tests-could-not-run", message, details=_tail(result))
        # the report, not the exit code alone, decides: a failed case fails even after exit 0
        if report.failed and result.exit_code in (0, TESTS_FAILED, INTERRUPTED):
            return self._failed_cases(report, xml)
        if result.exit_code == 0 and report.tests == 0:
            return self._failed("no-tests", "the JUnit report holds no tests", evidence=xml)
        if result.exit_code == 0:
            summary = f"{report.passed} passed, {report.skipped} skipped"
            return CheckResult(
                check=self.name,
                passed=True,
                evidence_name="junit.xml",
                evidence=xml,
                summary=summary,
            )
        message = f"pytest exited {result.exit_code}: {_tail(result, 300)}"
        return self._failed("tests-could-not-run", message, evidence=xml)

    def _failed_cases(self, report: JunitReport, xml: str) -> CheckResult:
        """One blocking finding per failed or errored test, named as pytest names it."""
        findings = tuple(
            Finding(
                check=self.name,
                rule="test-failed",
                message=f"{case.nodeid}: {case.message}",
                severity=Severity.HIGH,
                path=case.path,
                line=case.line,
            )
            for case in report.failed
        )
        summary = f"{len(findings)} of {report.tests} test(s) failed or errored"
        return CheckResult(
            check=self.name,
            passed=False,
            findings=findings,
            evidence_name="junit.xml",
            evidence=xml,
            summary=summary,
        )

    def _failed(
        self, rule: str, message: str, *, evidence: str = "", details: str = ""
    ) -> CheckResult:
        """A failed result of one finding; the evidence is synthesised when pytest wrote none."""
        finding = Finding(check=self.name, rule=rule, message=message, severity=Severity.HIGH)
        return CheckResult(
            check=self.name,
            passed=False,
            findings=(finding,),
            evidence_name="junit.xml",
            evidence=evidence
            or synthesise_junit(
                suite="codefactory.tests", name=rule, message=message, details=details
            ),
            summary=message,
        )


def _tail(result: ExecResult, limit: int = 4000) -> str:
    """The end of the run's output, where pytest and Python put the reason."""
    text = (result.stdout.rstrip() + "\n" + result.stderr.rstrip()).strip()
    return text[-limit:]
