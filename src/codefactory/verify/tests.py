"""Tests check: the repository's test suite, run inside the sandbox, judged by its JUnit report.

The suite runs the way the repository says (`suite_command.py`): its repository config's test
command and test paths, else `python -m pytest`. Only the tests that reach the changed code
run when the base commit's test map allows it (`selection.py`); otherwise the whole suite,
and the evidence says which and why. The map and the base commit's own results (its
baseline) are recorded once per base commit by `record_base`, on a separate workspace with
the dependencies installed. A command that is not pytest is judged by its exit status. A
suite that cannot run, collects nothing or does not finish is a failure, never a pass, and
the summary says why (the module that could not be collected and its error, an interpreter
the project does not support, pytest missing, a command not found).

The one pytest run is also the measurement of the changed lines (`coverage_run.py`): it runs
under coverage, and the JUnit report carries which added or modified lines are executable
and which ran (`changed_coverage.py`), or why that was not measured. Evidence, not a gate.
"""

from __future__ import annotations

from dataclasses import replace

from codefactory.domain import Change, CheckResult, ExecResult, Finding, Severity
from codefactory.projects import Ecosystem
from codefactory.sandbox.layout import SH
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.cache import CacheKey, VerifyCache, findings_to_json
from codefactory.verify.changed_coverage import (
    NOTHING_TO_MEASURE,
    ChangedCoverage,
    not_measured,
    with_changed_coverage,
)
from codefactory.verify.coverage_gate import coverage_finding
from codefactory.verify.coverage_run import OUT_PATH, measuring_argv, python_lines, read_measurement
from codefactory.verify.errors import JunitUnparseable, TestMapInvalid
from codefactory.verify.findings import digest
from codefactory.verify.junit import (
    JunitCase,
    JunitReport,
    error_line,
    parse_junit,
    synthesise_junit,
    synthesise_passed,
    synthesise_skipped,
    with_properties,
)
from codefactory.verify.lint import factory_version
from codefactory.verify.port import Baseline, Cost
from codefactory.verify.project import ProjectBound
from codefactory.verify.selection import Selection, full, select_tests
from codefactory.verify.suite_command import (
    PYTEST_MISSING,
    EnvironmentProbe,
    SuiteCommand,
    probe_environment,
    suite_command,
)
from codefactory.verify.testmap import RECORDER_VERSION, TestMap, record_test_map

# Under `.codefactory/`, which the harvester never counts as part of a change.
JUNIT_PATH = ".codefactory/junit.xml"
PYTEST_OPTIONS = (
    "-q",
    "-p",
    "no:cacheprovider",
    # xunit1 adds `file` and `line` to each test case: findings can then point at the test
    "-o",
    "junit_family=xunit1",
)
PYTEST = ("python", "-m", "pytest", *PYTEST_OPTIONS, f"--junitxml={JUNIT_PATH}")
# pytest's exit codes (`pytest.ExitCode`)
TESTS_FAILED, INTERRUPTED, NO_TESTS = 1, 2, 5
# the shell's exit codes for a command found but not executable, and not found
NOT_EXECUTABLE, NOT_FOUND = 126, 127
NOT_RUN = frozenset({"tests-could-not-run", "tests-timed-out", "no-tests"})
"""The rules of a suite that did not run to the end: no coverage is read from it."""
MAP = "tests:map"
"""The cache's name for test maps (the check's own name holds its baseline)."""


class PytestCheck(ProjectBound):
    """Runs the suite (or its selected slice) with the repository's `/env`; no network."""

    name: str = "tests"
    baseline = Baseline.RECORDED
    cost = Cost.EXPENSIVE
    ecosystems = frozenset({Ecosystem.PYTHON})

    def __init__(
        self,
        timeout_s: float = 300.0,
        *,
        cache: VerifyCache | None = None,
        select: bool = True,
        measure: bool = True,
        min_changed_line_coverage: float | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.cache = cache
        self.select = select and cache is not None
        self.measure = measure
        """Run pytest under coverage to measure the changed lines (`changed_coverage.py`)."""
        self.min_changed_line_coverage = min_changed_line_coverage
        """A floor, in percent, on that coverage (`coverage_gate.py`); None: evidence only."""
        self._map_errors: dict[str, str] = {}

    def config_digest(self) -> str:
        return digest("tests", RECORDER_VERSION, factory_version("coverage"), "tests-2")

    def recorded(self, commit: str) -> bool:
        """Whether the base commit's map is recorded, or failed to be in this process (a
        suite that hung once is not run again at every round)."""
        if self.cache is None or commit in self._map_errors:
            return True
        return self.cache.get(self._key(MAP, commit)) is not None

    def record_failed(self, commit: str, reason: str) -> None:
        self._map_errors[commit] = reason

    def record_base(self, workspace: Workspace) -> None:
        """Record the base commit's test map and failures (its baseline) in the cache."""
        if self.cache is None:
            return
        commit = workspace.base_commit
        project = self.project_of(workspace)
        command = suite_command(project)
        probe = probe_environment(workspace, project)
        if probe.problem:
            self._map_errors[commit] = f"the base commit's tests could not run: {probe.problem}"
            return
        if not command.pytest:
            result = self._run_command(workspace, command)
            findings = [] if result.ok else [self._command_failed(command, result)]
            self.cache.put(self._key(self.name, commit), findings_to_json(findings))
            self._map_errors[commit] = f"the test command `{command.shown}` is not pytest"
            return
        try:
            test_map, junit = record_test_map(
                workspace,
                pytest_args=[
                    *recording_arguments(pytest_arguments(command)),
                    *PYTEST_OPTIONS,
                    *command.paths,
                ],
                timeout_s=self.timeout_s,
            )
        except TestMapInvalid as exc:
            self._map_errors[commit] = exc.reason
            return
        try:
            report = parse_junit(junit)
        except JunitUnparseable as exc:
            self._map_errors[commit] = f"the base commit's JUnit report is unreadable: {exc}"
            return
        self.cache.put(self._key(self.name, commit), findings_to_json(self._cases(report)))
        self.cache.put(self._key(MAP, commit), test_map.to_text())

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Run the selected tests (or the suite) after the change, under coverage when they are
        pytest's; the JUnit report is evidence and carries the coverage of the changed lines
        (`changed_coverage.py`), or why it was not measured."""
        result, coverage = self._run_suite(workspace, change)
        return with_changed_coverage(self._floored(result, coverage), coverage)

    def _floored(self, result: CheckResult, coverage: ChangedCoverage) -> CheckResult:
        """`result` with the coverage floor's finding, when one is set and not held (a suite
        that did not run has its own finding already)."""
        minimum = self.min_changed_line_coverage
        if minimum is None or any(f.rule in NOT_RUN for f in result.findings):
            return result
        finding = coverage_finding(coverage, minimum, self.name)
        if finding is None:
            return result
        summary = f"{result.summary}; {finding.message}"
        return replace(result, passed=False, findings=(*result.findings, finding), summary=summary)

    def _run_suite(
        self, workspace: Workspace, change: Change
    ) -> tuple[CheckResult, ChangedCoverage]:
        project = self.project_of(workspace)
        command = suite_command(project)
        if not command.pytest:
            selection = full(f"the repository's test command `{command.shown}` is not pytest")
        else:
            selection = restricted(self._selection(workspace, change), command.paths)
        wanted, others, notes = python_lines(change)
        probe = probe_environment(workspace, project)
        if probe.problem:
            failed = self._failed("tests-could-not-run", probe.problem, selection)
            return failed, not_measured(f"the tests could not run: {probe.problem}", skipped=others)
        if not command.pytest:
            ran = self._run_command(workspace, command)
            why = f"the test command `{command.shown}` is not pytest, which coverage measures"
            return self._judge_command(command, ran, selection), not_measured(why, skipped=others)
        # a stale report (or coverage) from an earlier round must never be read as this one's
        script = [SH, "-c", f'/usr/bin/rm -f {JUNIT_PATH} {OUT_PATH} && exec "$@"', "sh"]
        options = [*PYTEST_OPTIONS, f"--junitxml={JUNIT_PATH}"]
        chosen = selection.selectors if not selection.full else command.paths
        argv: list[str] = [*command.argv, *options, *chosen]
        if self.measure and wanted:
            args = [*pytest_arguments(command), *options, *chosen]
            argv = measuring_argv(command, args, wanted)
        result = workspace.exec([*script, *argv], phase=Phase.CHECK, timeout_s=self.timeout_s)
        judged = self._judged(workspace, command, result, selection, probe)
        return judged, self._coverage(workspace, judged, (wanted, others, notes), selection)

    def _coverage(
        self,
        workspace: Workspace,
        judged: CheckResult,
        lines: tuple[dict[str, tuple[int, ...]], dict[str, str], list[str]],
        selection: Selection,
    ) -> ChangedCoverage:
        """The coverage of the changed lines by this run, or why there is none."""
        wanted, others, notes = lines
        if any(f.rule in NOT_RUN for f in judged.findings):
            return not_measured(
                f"the tests did not run to the end: {judged.summary[:300]}", skipped=others
            )
        if not self.measure:
            return not_measured("measuring the changed lines is turned off", skipped=others)
        if not wanted:
            return not_measured(NOTHING_TO_MEASURE, skipped=others)
        scope = _scope(selection)
        if not selection.full:
            shown = ", ".join(selection.selectors[:10])
            more = len(selection.selectors) - 10
            scope += f": {shown}" + (f" and {more} more" if more > 0 else "")
        return read_measurement(workspace, wanted, others, scope=scope, notes=notes)

    def _judged(
        self,
        workspace: Workspace,
        command: SuiteCommand,
        result: ExecResult,
        selection: Selection,
        probe: EnvironmentProbe,
    ) -> CheckResult:
        """The pytest run judged by its JUnit report (and exit code)."""
        if result.timed_out:
            limit = f"the test suite did not finish within {self.timeout_s:g} s"
            return self._failed("tests-timed-out", limit, selection, details=_tail(result))
        if result.exit_code in (NOT_EXECUTABLE, NOT_FOUND) and probe.has_pytest:
            return self._not_found(command, result, selection)
        raw = workspace.read_file(JUNIT_PATH, phase=Phase.CHECK)
        xml = raw.decode("utf-8", "replace") if raw is not None else ""
        try:
            report = parse_junit(xml) if xml else None
        except JunitUnparseable as exc:
            return self._failed("tests-could-not-run", str(exc), selection, details=_tail(result))
        if result.exit_code == NO_TESTS:
            message = "pytest collected no tests: a repository without tests cannot pass"
            return self._failed("no-tests", message, selection, evidence=xml)
        return self._judge(result, report, xml, selection, probe)

    def skipped(self, reason: str) -> CheckResult:
        xml = synthesise_skipped(suite="codefactory.tests", name="not-run", reason=reason)
        result = CheckResult(
            check=self.name,
            passed=False,
            evidence_name="junit.xml",
            evidence=with_properties(xml, {}),
            summary=reason,
        )
        return with_changed_coverage(result, not_measured(f"the tests were not run: {reason}"))

    def _key(self, check: str, commit: str) -> CacheKey:
        return CacheKey(check=check, commit=commit, digest=self.config_digest())

    def _selection(self, workspace: Workspace, change: Change) -> Selection:
        if not self.select or self.cache is None:
            return full("test selection is off")
        commit = workspace.base_commit
        cached = self.cache.get(self._key(MAP, commit))
        if cached is None:
            error = self._map_errors.get(commit, "it was never recorded")
            return full(f"no test map of the base commit: {error}")
        try:
            return select_tests(TestMap.from_text(cached), change)
        except TestMapInvalid as exc:
            return full(str(exc))

    def _judge(
        self,
        result: ExecResult,
        report: JunitReport | None,
        xml: str,
        selection: Selection,
        probe: EnvironmentProbe,
    ) -> CheckResult:
        if report is None:
            message = f"pytest exited {result.exit_code} and wrote no JUnit report"
            if not probe.has_pytest or "No module named pytest" in result.stderr:
                message = PYTEST_MISSING
            elif error_line(_tail(result)):
                message += f": {error_line(_tail(result))}"
            return self._failed("tests-could-not-run", message, selection, details=_tail(result))
        # the report, not the exit code alone, decides: a failed case fails even after exit 0
        if report.failed and result.exit_code in (0, TESTS_FAILED, INTERRUPTED):
            findings = self._cases(report)
            summary = f"{len(findings)} of {report.tests} test(s) failed or errored"
            uncollected = [case for case in report.failed if case.collection_error]
            if uncollected and report.passed == 0:
                # nothing could be collected and run: the suite judged nothing, whatever the
                # base commit's suite did (a pre-existing collection error must not let a
                # change its tests would catch through)
                message = f"no test could run: {_uncollected(uncollected)}"
                return self._failed("tests-could-not-run", message, selection, evidence=xml)
            if uncollected:
                summary = f"{_uncollected(uncollected)}; {summary}"
            return self._result(False, findings, xml, selection, summary)
        if result.exit_code == 0 and report.tests == 0:
            message = "the JUnit report holds no tests"
            return self._failed("no-tests", message, selection, evidence=xml)
        if result.exit_code == 0:
            summary = f"{report.passed} passed, {report.skipped} skipped"
            return self._result(True, [], xml, selection, summary)
        message = f"pytest exited {result.exit_code}: {_tail(result, 300)}"
        return self._failed("tests-could-not-run", message, selection, evidence=xml)

    def _run_command(self, workspace: Workspace, command: SuiteCommand) -> ExecResult:
        # the test paths are pytest's; another command is run as the repository wrote it
        script = [SH, "-c", 'exec "$@"', "sh", *command.argv]
        return workspace.exec(script, phase=Phase.CHECK, timeout_s=self.timeout_s)

    def _judge_command(
        self, command: SuiteCommand, result: ExecResult, selection: Selection
    ) -> CheckResult:
        """A test command that is not pytest: exit 0 passes, anything else fails."""
        if result.timed_out:
            limit = f"the test command `{command.shown}` did not finish within {self.timeout_s:g} s"
            return self._failed("tests-timed-out", limit, selection, details=_tail(result))
        if result.exit_code in (NOT_EXECUTABLE, NOT_FOUND):
            return self._not_found(command, result, selection)
        if result.ok:
            xml = synthesise_passed(
                suite="codefactory.tests", name=command.shown, details=_tail(result)
            )
            summary = f"the test command `{command.shown}` passed (exit 0)"
            return self._result(True, [], xml, selection, summary)
        finding = self._command_failed(command, result)
        xml = synthesise_junit(
            suite="codefactory.tests",
            name=command.shown,
            message=finding.message,
            details=_tail(result),
        )
        return self._result(False, [finding], xml, selection, finding.message)

    def _command_failed(self, command: SuiteCommand, result: ExecResult) -> Finding:
        return Finding(
            check=self.name,
            rule="test-command-failed",
            message=(
                f"the test command `{command.shown}` exited {result.exit_code}: "
                f"{_tail(result, 500)}"
            ),
            severity=Severity.HIGH,
            fingerprint=digest(self.name, "test-command-failed", command.shown),
        )

    def _not_found(
        self, command: SuiteCommand, result: ExecResult, selection: Selection
    ) -> CheckResult:
        where = f" (set in {command.source})" if command.source else ""
        message = (
            f"the test command `{command.shown}`{where} was not found or cannot be executed "
            f"in the sandbox (exit {result.exit_code}): {_tail(result, 300)}"
        )
        return self._failed("tests-could-not-run", message, selection, details=_tail(result))

    def _cases(self, report: JunitReport) -> list[Finding]:
        """One blocking finding per failed or errored test, named as pytest names it; a
        module pytest could not collect is named with its error."""
        return [_case_finding(self.name, case) for case in report.failed]

    def _result(
        self,
        passed: bool,
        findings: list[Finding],
        xml: str,
        selection: Selection,
        summary: str,
    ) -> CheckResult:
        return CheckResult(
            check=self.name,
            passed=passed,
            findings=tuple(findings),
            evidence_name="junit.xml",
            evidence=with_properties(xml, _properties(selection)),
            summary=f"{_scope(selection)}: {summary}",
        )

    def _failed(
        self,
        rule: str,
        message: str,
        selection: Selection,
        *,
        evidence: str = "",
        details: str = "",
    ) -> CheckResult:
        """A failed result of one finding; the evidence is synthesised when pytest wrote none."""
        finding = Finding(check=self.name, rule=rule, message=message, severity=Severity.HIGH)
        xml = evidence or synthesise_junit(
            suite="codefactory.tests", name=rule, message=message, details=details
        )
        return self._result(False, [finding], xml, selection, message)


def _case_finding(check: str, case: JunitCase) -> Finding:
    message = f"{case.nodeid}: {case.message}"
    if case.collection_error:
        message = f"{case.module}: collection error: {case.detail or case.message}"
    return Finding(
        check=check,
        rule="test-failed",
        message=message,
        severity=Severity.HIGH,
        path=case.path or (case.module if case.collection_error else ""),
        line=case.line,
        fingerprint=digest(check, "test-failed", case.nodeid),
    )


def _uncollected(cases: list[JunitCase]) -> str:
    shown = "; ".join(f"{c.module}: {c.detail or c.message}" for c in cases[:3])
    more = f" (and {len(cases) - 3} more)" if len(cases) > 3 else ""
    return f"pytest could not collect {shown}{more}"


def restricted(selection: Selection, paths: tuple[str, ...]) -> Selection:
    """The selection kept to the repository config's `test_paths` (all of it without any)."""
    if not paths or selection.full:
        return selection
    inside = tuple(s for s in selection.selectors if _under(s.split("::", 1)[0], paths))
    if not inside:
        return full("no selected test lies in the configured test paths", selection.suite_size)
    return replace(selection, selectors=inside)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(
        path == root.rstrip("/") or path.startswith(root.rstrip("/") + "/") for root in roots
    )


def pytest_arguments(command: SuiteCommand) -> list[str]:
    """The arguments a pytest command gives pytest itself (after `pytest` / `-m pytest`)."""
    argv = list(command.argv)
    return argv[3:] if len(argv) >= 3 and argv[1:3] == ["-m", "pytest"] else argv[1:]


STOP_EARLY = frozenset(
    {"-x", "--exitfirst", "--sw", "--stepwise", "--lf", "--last-failed", "--ff",
     "--failed-first", "--nf", "--new-first", "--stepwise-skip", "--sw-skip"}
)  # fmt: skip
"""pytest options that run less than the whole suite, or stop it at a failure."""


def recording_arguments(args: list[str]) -> list[str]:
    """The repository's pytest arguments without those that would stop or shrink the base
    commit's recorded run: a map missing the tests after the first failure would leave
    them out of every later selection."""
    kept: list[str] = []
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
            continue
        if arg in STOP_EARLY or arg.startswith("--maxfail="):
            continue
        if arg == "--maxfail":
            skip_value = True
            continue
        kept.append(arg)
    return kept


def _scope(selection: Selection) -> str:
    if selection.full:
        return f"whole suite ({'; '.join(selection.reasons)})"
    return (
        f"{len(selection.selectors)} test selector(s) of a {selection.suite_size}-test suite "
        f"({'; '.join(selection.reasons)})"
    )


def _properties(selection: Selection) -> dict[str, str]:
    """The selection as JUnit properties: what ran, out of how many, and why."""
    return {
        "codefactory.selection": "whole-suite" if selection.full else "selected",
        "codefactory.selection.reasons": "; ".join(selection.reasons),
        "codefactory.selection.tests": " ".join(selection.selectors),
        "codefactory.selection.suite_size": str(selection.suite_size),
        "codefactory.selection.reached": "; ".join(
            f"{name}: {' '.join(tests) or 'no test'}" for name, tests in selection.reached.items()
        ),
    }


def _tail(result: ExecResult, limit: int = 4000) -> str:
    """The end of the run's output, where pytest and Python put the reason."""
    text = (result.stdout.rstrip() + "\n" + result.stderr.rstrip()).strip()
    return text[-limit:]
