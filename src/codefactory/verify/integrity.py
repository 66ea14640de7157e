"""Integrity check: a change must not pass the gate by changing what judges it.

Every edit of a judge (`judges.py`: tests, fixtures, tool configuration, repository waivers,
inline suppressions) is a finding at its path and line, and when the change edits existing
tests, fixtures or test configuration the base commit's versions of them run against the
changed code (`basetests.py`): a loosened assertion cannot make the gate pass. Adding tests
is no finding; the summary lists them.

Whether such edits block is decided by what the ticket asked for (`Mandate`), by label only:

- `tests` or `test-change`: edits of tests and fixtures, skip/xfail markers and failures of
  the base commit's tests are reported, not blocking;
- `config-change`: edits of tool configuration and waivers, and lint, type or security
  suppressions (`# noqa`, `# nosec`, `# type: ignore`, `# pragma: ...`) are reported, not
  blocking.

Nothing else unlocks them: not the kind of change, not the ticket's text (untrusted: the
engine reads it, and anyone can write it). A check that could not judge
(`integrity-could-not-run`, `base-tests-could-not-run`) always blocks.
"""

from __future__ import annotations

from dataclasses import replace

from codefactory.domain import Change, CheckResult, Finding, Severity
from codefactory.sandbox.port import Workspace
from codefactory.verify.basetests import BaseTestRun, run_base_tests
from codefactory.verify.diff import DiffedChange
from codefactory.verify.findings import content_of, digest
from codefactory.verify.judges import Judged, JudgeEdit, Topic, judge_edits
from codefactory.verify.port import Baseline, Check, Cost, Mandate
from codefactory.verify.sarif import to_sarif

VERSION = "1"
UNLOCKING_LABELS: dict[Topic, frozenset[str]] = {
    Topic.TESTS: frozenset({"tests", "test-change"}),
    Topic.CONFIG: frozenset({"config-change"}),
}
"""The ticket labels (lower case) that make edits of each topic reported, not blocking."""
COULD_NOT_RUN = "integrity-could-not-run"


def allowed_topics(mandate: Mandate) -> frozenset[Topic]:
    """The topics whose edits the ticket asked for, by its labels alone."""
    return frozenset(t for t, labels in UNLOCKING_LABELS.items() if labels & mandate.labels)


class IntegrityCheck:
    """Reports edits of the change's judges and runs the base commit's tests against it.

    Cheap: it reads the diff, and runs tests only when a judge was edited (a change that,
    unless the ticket asked for it, already blocks).
    """

    name: str = "integrity"
    baseline = Baseline.NONE
    cost = Cost.CHEAP

    def __init__(self, *, timeout_s: float = 300.0, mandate: Mandate | None = None) -> None:
        self.timeout_s = timeout_s
        """Wall-clock limit of the base commit's test run, in seconds."""
        self.mandate = mandate or Mandate()

    def under(self, mandate: Mandate) -> Check:
        """This check for a change made for a ticket with `mandate`."""
        return IntegrityCheck(timeout_s=self.timeout_s, mandate=mandate)

    def config_digest(self) -> str:
        labels = ",".join(sorted(self.mandate.labels))
        return digest(self.name, VERSION, labels)

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Judge edits of `change` (a `DiffedChange`: without base versions it cannot judge)."""
        unknown = _unknown_bases(change)
        if unknown or not isinstance(change, DiffedChange):
            reason = (
                "the base versions of the changed files are unknown "
                f"({', '.join(unknown[:5]) or 'no base given'}): a rewritten test cannot be "
                "told from a new one"
            )
            return self._result([_could_not_run(reason)], reason)
        judged = judge_edits(change)
        allowed = allowed_topics(self.mandate)
        findings = [self._finding(edit, allowed) for edit in judged.edits]
        notes = [_added_note(judged)]
        if judged.needs_base_tests:
            run = self._base_tests(workspace, change, judged)
            findings += [_allow(f, Topic.TESTS in allowed) for f in run.failures]
            findings += [run.broken] if run.broken is not None else []
            notes.append(run.summary)
        return self._result(findings, _summary(findings, notes))

    def _base_tests(self, workspace: Workspace, change: Change, judged: Judged) -> BaseTestRun:
        after = {path: content_of(change, path) for path in judged.restore}
        return run_base_tests(
            workspace,
            show=judged.restore,
            after=after,
            selectors=judged.selectors,
            timeout_s=self.timeout_s,
            check=self.name,
        )

    def _finding(self, edit: JudgeEdit, allowed: frozenset[Topic]) -> Finding:
        finding = Finding(
            check=self.name,
            rule=edit.rule,
            message=edit.message,
            severity=Severity.HIGH,
            path=edit.path,
            line=edit.line,
            fingerprint=digest(self.name, edit.rule, edit.path, edit.message),
        )
        return _allow(finding, edit.topic in allowed)

    def _result(self, findings: list[Finding], summary: str) -> CheckResult:
        return CheckResult(
            check=self.name,
            passed=not any(f.blocking for f in findings),
            findings=tuple(findings),
            evidence_name="integrity.sarif",
            evidence=to_sarif("codefactory-integrity", VERSION, findings),
            summary=summary,
        )


def _allow(finding: Finding, asked: bool) -> Finding:
    if not asked:
        return finding
    note = " (the ticket's labels ask for this kind of change: reported, not blocking)"
    return replace(finding, blocking=False, message=finding.message + note)


def _unknown_bases(change: Change) -> list[str]:
    if not isinstance(change, DiffedChange):
        return list(change.paths)
    return [path for path in change.paths if path not in change.base]


def _could_not_run(reason: str) -> Finding:
    return Finding(
        check=IntegrityCheck.name, rule=COULD_NOT_RUN, message=reason, severity=Severity.HIGH
    )


def _added_note(judged: Judged) -> str:
    if not judged.added_tests:
        return "no test added"
    shown = ", ".join(judged.added_tests[:10])
    more = f" and {len(judged.added_tests) - 10} more" if len(judged.added_tests) > 10 else ""
    return f"{len(judged.added_tests)} test(s) added: {shown}{more}"


def _summary(findings: list[Finding], notes: list[str]) -> str:
    blocking = sum(1 for f in findings if f.blocking)
    head = (
        f"{len(findings)} edit(s) of what judges the change, {blocking} blocking"
        if findings
        else "no test, fixture, tool configuration, waiver or suppression edited"
    )
    return "; ".join([head, *notes])
