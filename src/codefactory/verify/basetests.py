"""The base commit's tests, run against the changed code in the change's own workspace.

When a change edits tests, fixtures or test configuration, its own suite no longer proves
much: a loosened assertion passes. So the base versions of those files are put in place and
pytest runs them, in ONE check command (`scripts/base_tests.py`), which puts the change's
versions back before it ends. One command because check commands share a throwaway layer
for the whole check phase (the tests check reads the same files): the base versions must
never be visible to another command. Should the command die before putting them back (its
time limit), a second command does it. The base contents come from the gate (the
`DiffedChange`), read from a workspace at the base commit, never from the engine's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files

from codefactory.domain import ExecResult, Finding, Severity
from codefactory.sandbox.layout import SH
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.errors import JunitUnparseable
from codefactory.verify.findings import digest
from codefactory.verify.junit import JunitReport, parse_junit
from codefactory.verify.tests import NO_TESTS, PYTEST_OPTIONS, TESTS_FAILED

BASE_TESTS_JUNIT = ".codefactory/base-tests-junit.xml"
"""Under `.codefactory/`, which the harvester never counts as part of a change."""
DONE = "codefactory-base-tests-done"
"""What the driver prints last, once the change's versions are back."""
FAILED, COULD_NOT_RUN = "base-test-failed", "base-tests-could-not-run"


@dataclass(frozen=True, kw_only=True)
class BaseTestRun:
    """What the base commit's tests said of the changed code.

    `failures` are `base-test-failed` findings; `broken` is a `base-tests-could-not-run`
    finding when pytest could not judge (no report, no tests, time limit), else None.
    """

    failures: tuple[Finding, ...] = ()
    broken: Finding | None = None
    summary: str = ""


def run_base_tests(
    workspace: Workspace,
    *,
    show: Mapping[str, bytes | None],
    after: Mapping[str, bytes | None],
    selectors: Sequence[str],
    timeout_s: float,
    check: str,
) -> BaseTestRun:
    """Put `show` (path → base content, None: absent) in place, run pytest on `selectors`
    (none: the whole suite), put `after` (the change's versions) back.

    Findings name `check`; a failed test is `base-test-failed` at the test's file and line.
    """
    pytest_args = [*PYTEST_OPTIONS, f"--junitxml={BASE_TESTS_JUNIT}", *selectors]
    result = _drive(workspace, show=show, after=after, pytest_args=pytest_args, timeout_s=timeout_s)
    if DONE not in result.stdout:
        restored = _drive(workspace, show=after, after=after, pytest_args=None, timeout_s=60)
        if DONE not in restored.stdout:
            reason = f"the change's versions could not be put back: {_tail(restored)}"
            return _broken(check, reason)
    if result.timed_out:
        return _broken(check, f"the base commit's tests did not finish within {timeout_s:g} s")
    raw = workspace.read_file(BASE_TESTS_JUNIT, phase=Phase.CHECK)
    if raw is None:
        message = f"pytest exited {result.exit_code} and wrote no JUnit report"
        if "No module named pytest" in result.stderr:
            message = "pytest is not installed in the repository's environment /env"
        return _broken(check, f"{message}: {_tail(result)}")
    try:
        report = parse_junit(raw)
    except JunitUnparseable as exc:
        return _broken(check, str(exc))
    return _judged(check, result, report, selectors)


def _judged(
    check: str, result: ExecResult, report: JunitReport, selectors: Sequence[str]
) -> BaseTestRun:
    which = ", ".join(selectors) if selectors else "the whole suite"
    if result.exit_code == NO_TESTS or report.tests == 0:
        return _broken(check, f"the base commit's tests ({which}) collected no tests")
    if not report.failed and result.exit_code not in (0, TESTS_FAILED):
        return _broken(check, f"pytest exited {result.exit_code}: {_tail(result)}")
    failures = tuple(
        Finding(
            check=check,
            rule=FAILED,
            message=(
                f"{case.nodeid}, as the base commit has it, fails against the change: "
                f"{case.message}"
            ),
            severity=Severity.HIGH,
            path=case.path,
            line=case.line,
            fingerprint=digest(check, FAILED, case.nodeid),
        )
        for case in report.failed
    )
    summary = (
        f"the base commit's tests ({which}): {len(failures)} of {report.tests} failed"
        if failures
        else f"the base commit's tests ({which}): {report.passed} passed, {report.skipped} skipped"
    )
    return BaseTestRun(failures=failures, summary=summary)


def _drive(
    workspace: Workspace,
    *,
    show: Mapping[str, bytes | None],
    after: Mapping[str, bytes | None],
    pytest_args: list[str] | None,
    timeout_s: float,
) -> ExecResult:
    order = {"show": _encoded(show), "after": _encoded(after), "pytest": pytest_args}
    program = ["python", "-c", driver_source()]
    # a stale report from an earlier round must never be read as this one's
    command = [SH, "-c", f'/usr/bin/rm -f {BASE_TESTS_JUNIT} && exec "$@"', "sh", *program]
    return workspace.exec(
        command, phase=Phase.CHECK, timeout_s=timeout_s, stdin=json.dumps(order).encode()
    )


def driver_source() -> str:
    """The driver, as one `python -c` program."""
    script = files("codefactory.verify").joinpath("scripts", "base_tests.py")
    return script.read_text(encoding="utf-8")


def _encoded(contents: Mapping[str, bytes | None]) -> dict[str, str | None]:
    return {
        path: None if content is None else base64.b64encode(content).decode("ascii")
        for path, content in contents.items()
    }


def _broken(check: str, reason: str) -> BaseTestRun:
    finding = Finding(check=check, rule=COULD_NOT_RUN, message=reason, severity=Severity.HIGH)
    return BaseTestRun(broken=finding, summary=reason)


def _tail(result: ExecResult, limit: int = 800) -> str:
    text = (result.stdout.rstrip() + "\n" + result.stderr.rstrip()).strip()
    return text[-limit:] or "no output"
