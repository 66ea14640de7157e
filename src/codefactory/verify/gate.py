"""The gate: every check over one workspace, judged against the base commit, fast.

Order and speed: the cheap checks (diff policy, lint, SAST, secrets, SCA) run first, in
parallel threads (each `workspace.exec` is its own sandboxed process), together with their
base-commit runs and, when the test map of the base commit is missing, its recording. The
expensive checks (the tests) run after, unless a cheap check already has a blocking finding
(`stop_early`): a blocking finding is then certain and the tests are reported as not run.

Judgement: a finding blocks when it is new against the base commit, at or above its check's
severity threshold, and not waived. A "could not judge" finding always blocks unless a waiver
names its rule. One broken check never stops the others: a check that raises becomes a failed
`check-crashed` result.

Which checks: the workspace's project is detected once per run (`workspace_project.py`); a
check serves some ecosystems or all (`applicable.py`), and one the repository has no
ecosystem for is reported as not applicable, with why. The repository config may skip the
skippable checks (reported as skipped by it, never as passed) and add its own
(`custom.py`), run after the cheap checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from codefactory.domain import Change, CheckResult, Finding, Severity, TriggerEvent
from codefactory.projects.model import Project
from codefactory.sandbox.port import Sandbox, Workspace
from codefactory.verify.applicable import SKIPPABLE_CHECKS, plan, unknown_skips
from codefactory.verify.base import BaseTrees, BaseUnavailable, SetupPhase
from codefactory.verify.baseline import BaseFiles, Baselines, baseline_kind, compare
from codefactory.verify.cache import MemoryVerifyCache, VerifyCache
from codefactory.verify.custom import repository_checks
from codefactory.verify.diff import with_base
from codefactory.verify.errors import BaseUnreadable
from codefactory.verify.findings import at_least, cannot_judge
from codefactory.verify.port import (
    Baseline,
    Check,
    ComparedCheck,
    Cost,
    Mandate,
    MandatedCheck,
    ProjectCheck,
    RecordingCheck,
    SkippableCheck,
)
from codefactory.verify.sarif import driver_of, to_sarif
from codefactory.verify.serial import SerialWorkspace
from codefactory.verify.settings import VerifySettings
from codefactory.verify.waivers import WaiverUse, find_waiver, waive, waiver_uses
from codefactory.verify.workspace_project import ProjectDetector, detect_workspace


class Gate:
    """Runs a fixed list of checks and returns one result per check, in the same order, then
    one per check the repository config adds.

    `skippable` names the checks (or ports: `lint` covers ruff and ESLint) a repository
    config may skip; `detect` reads the workspace's project (None: every check applies and
    the config is not read); `custom_timeout_s` bounds each check the config adds.
    """

    def __init__(
        self,
        checks: Sequence[Check],
        *,
        settings: VerifySettings | None = None,
        cache: VerifyCache | None = None,
        sandbox: Sandbox | None = None,
        setup: SetupPhase | None = None,
        skippable: frozenset[str] = SKIPPABLE_CHECKS,
        detect: ProjectDetector | None = detect_workspace,
        custom_timeout_s: float = 300.0,
    ) -> None:
        self.checks = tuple(checks)
        self.settings = settings or VerifySettings()
        self.cache = cache or MemoryVerifyCache()
        self.sandbox = sandbox
        self.setup = setup
        self.skippable = skippable
        self.detect = detect
        self.custom_timeout_s = custom_timeout_s

    def run(
        self,
        workspace: Workspace,
        change: Change,
        *,
        repo: Path | None = None,
        ticket: TriggerEvent | None = None,
    ) -> list[CheckResult]:
        """Judge `change` (made in `workspace`) against the base commit of `repo`.

        `ticket` is the trigger the change was made for: a check that weighs what it asked
        for (`MandatedCheck`, the integrity check) reads only its kind and labels
        (`Mandate.of`), never its text. Without it nothing was asked for, the strictest case.
        """
        mandate = Mandate.of(ticket)
        checks = [c.under(mandate) if isinstance(c, MandatedCheck) else c for c in self.checks]
        project, detect_note = self._project(workspace)
        if project is not None:
            config = project.config
            checks += repository_checks(
                config.add_checks, source=config.source, timeout_s=self.custom_timeout_s
            )
            checks = [c.for_project(project) if isinstance(c, ProjectCheck) else c for c in checks]
        chosen = plan(checks, project, self.skippable)
        notes = {i: [*n] for i, n in chosen.notes.items()}
        for name in unknown_skips(checks, project):
            notes.setdefault(0, []).append(f"the repository config skips {name!r}: no such check")
        if detect_note:
            notes.setdefault(0, []).append(detect_note)
        trees = BaseTrees(
            sandbox=self.sandbox,
            repo=repo,
            commit=workspace.base_commit,
            run_id=workspace.run_id,
            setup=self.setup,
        )
        running = [checks[i] for i in chosen.run]
        try:
            ran = _Judgement(self, running, SerialWorkspace(workspace), trees).run(change)
        finally:
            trees.close()
        results = dict(chosen.not_run) | dict(zip(chosen.run, ran, strict=True))
        return [_noted(results[i], notes.get(i, [])) for i in range(len(checks))]

    def _project(self, workspace: Workspace) -> tuple[Project | None, str]:
        """The workspace's project, once per run; None (every check runs) when unknown."""
        if self.detect is None:
            return None, ""
        try:
            return self.detect(workspace), ""
        except Exception as exc:  # noqa: BLE001 - unknown ecosystems: every check runs
            reason = f"{type(exc).__name__}: {exc}"
            return None, f"the project could not be detected ({reason}): every check ran"

    def waivers_applied(self, results: Sequence[CheckResult]) -> list[WaiverUse]:
        """Each waived finding of `results` with its waiver: one audit event each."""
        return waiver_uses(self.settings.waivers, results, datetime.now(UTC).date())


Diffed = Future[tuple[Change, str]]
"""The change with its base versions (or the plain change) and a note when they are unknown."""


class _Judgement:
    """One gate run: the checks, their baselines, then thresholds and waivers."""

    def __init__(
        self, gate: Gate, checks: Sequence[Check], workspace: Workspace, trees: BaseTrees
    ) -> None:
        self.gate = gate
        self.checks = tuple(checks)
        self.settings = gate.settings
        self.workspace = workspace
        self.trees = trees
        self.baselines = Baselines(gate.cache, trees)
        self.base_files = BaseFiles(gate.cache, trees)
        self.today = datetime.now(UTC).date()

    def run(self, change: Change) -> list[CheckResult]:
        checks = self.checks
        results: dict[int, CheckResult] = {}
        cheap = [i for i, c in enumerate(checks) if _cost(c) is Cost.CHEAP]
        rest = [i for i in range(len(checks)) if i not in cheap]
        # enough threads that no task waiting on another's future can starve it; the
        # commands themselves are serialised per workspace (`SerialWorkspace`)
        with ThreadPoolExecutor(max_workers=2 + 2 * len(checks)) as pool:
            recording = [pool.submit(self._record, checks[i]) for i in rest]
            diffed = pool.submit(self._with_base, change)
            results |= self._phase(pool, cheap, change, diffed)
            for future in recording:
                future.result()
            blocked = [results[i].check for i in cheap if not results[i].passed]
            if blocked and self.settings.stop_early:
                reason = f"not run: {', '.join(blocked)} already block(s) the change"
                results |= {i: _skipped(checks[i], reason) for i in rest}
            else:
                results |= self._phase(pool, rest, change, diffed)
        return [results[i] for i in range(len(checks))]

    def _with_base(self, change: Change) -> tuple[Change, str]:
        """The change with its files' base versions (cached per commit), else why not."""
        try:
            base = self.base_files.read(change.paths)
        except (BaseUnavailable, BaseUnreadable) as exc:
            return change, f"base versions unknown: {exc}"
        except Exception as exc:  # noqa: BLE001 - without the base, checks still run, warily
            return change, f"base versions unknown: {type(exc).__name__}: {exc}"
        return with_base(change, base), ""

    def _phase(
        self, pool: ThreadPoolExecutor, indexes: list[int], change: Change, diffed: Diffed
    ) -> dict[int, CheckResult]:
        checks = self.checks
        runs = {i: pool.submit(self._run, checks[i], change, diffed) for i in indexes}
        bases = {i: pool.submit(self._base, checks[i], diffed, runs[i]) for i in indexes}
        return {i: self._judge(runs[i], bases[i], diffed.result()[1]) for i in indexes}

    def _run(self, check: Check, change: Change, diffed: Diffed) -> CheckResult:
        """Checks that judge whole files start at once; those that read the diff wait for it."""
        if baseline_kind(check) not in (Baseline.FILES, Baseline.REPOSITORY):
            change = diffed.result()[0]
        return _run_safely(check, self.workspace, change)

    def _base(
        self, check: Check, diffed: Diffed, run: Future[CheckResult]
    ) -> tuple[list[Finding] | None, str]:
        change = diffed.result()[0]
        if baseline_kind(check) is Baseline.DIFF and not _comparable(run.result()):
            # nothing to compare: the base run (never cached) would only report what was fixed
            return [], ""
        return self.baselines.findings(check, change)

    def _record(self, check: Check) -> None:
        """Record a test map and test baseline of the base commit, once per commit."""
        if not isinstance(check, RecordingCheck) or check.recorded(self.trees.commit):
            return
        try:
            check.record_base(self.trees.installed())
        except Exception as exc:  # noqa: BLE001 - the check falls back to the whole suite
            check.record_failed(self.trees.commit, f"{type(exc).__name__}: {exc}")

    def _judge(
        self,
        run: Future[CheckResult],
        base: Future[tuple[list[Finding] | None, str]],
        note: str,
    ) -> CheckResult:
        result = run.result()
        try:
            base_findings, base_note = base.result()
        except Exception as exc:  # noqa: BLE001 - a broken baseline only means no baseline
            base_findings, base_note = None, f"no baseline: {type(exc).__name__}: {exc}"
        findings = [self._decide(f) for f in compare(result.findings, base_findings)]
        notes = [n for n in (note, base_note) if n]
        return _rebuilt(result, findings, notes)

    def _decide(self, finding: Finding) -> Finding:
        """Whether a compared finding blocks: new, over the threshold, not waived."""
        threshold = self.settings.threshold(finding.check)
        must_block = cannot_judge(finding.rule)
        blocking = must_block or (
            finding.blocking
            and finding.baseline_state not in ("unchanged", "absent")
            and at_least(finding.severity, threshold)
        )
        finding = replace(finding, blocking=blocking)
        waiver = find_waiver(self.settings.waivers, finding, self.today) if blocking else None
        return waive(finding, waiver) if waiver is not None else finding


def _run_safely(check: Check, workspace: Workspace, change: Change) -> CheckResult:
    try:
        return check.run(workspace, change)
    except Exception as exc:  # noqa: BLE001 - a crashed check is a failed check, not a crash
        return crashed(check.name, exc)


def _comparable(result: CheckResult) -> bool:
    return any(not cannot_judge(f.rule) for f in result.findings)


def _cost(check: Check) -> Cost:
    return check.cost if isinstance(check, ComparedCheck) else Cost.EXPENSIVE


def _rebuilt(result: CheckResult, findings: list[Finding], notes: list[str]) -> CheckResult:
    """The check's result after judgement: blocking recomputed, SARIF evidence rewritten."""
    blocking = sum(1 for f in findings if f.blocking)
    states = {s: sum(1 for f in findings if f.baseline_state == s) for s in ("unchanged", "absent")}
    # a check that failed without any finding (nothing to judge) stays failed
    passed = not blocking and (result.passed or bool(result.findings))
    summary = result.summary
    if states["unchanged"] or states["absent"]:
        summary += (
            f" ({blocking} blocking; pre-existing, not introduced by this change: "
            f"{states['unchanged']} unchanged, {states['absent']} fixed)"
        )
    if notes:
        summary += " [" + "; ".join(notes) + "]"
    evidence = result.evidence
    driver = driver_of(evidence) if result.evidence_name.endswith(".sarif") else None
    if driver is not None:
        evidence = to_sarif(driver[0], driver[1], findings, notes=notes)
    return replace(
        result, passed=passed, findings=tuple(findings), summary=summary, evidence=evidence
    )


def _noted(result: CheckResult, notes: list[str]) -> CheckResult:
    if not notes:
        return result
    return replace(result, summary=f"{result.summary} [{'; '.join(notes)}]")


def _skipped(check: Check, reason: str) -> CheckResult:
    if isinstance(check, SkippableCheck):
        return check.skipped(reason)
    return CheckResult(
        check=check.name,
        passed=False,
        evidence_name=f"{check.name}.sarif",
        evidence=to_sarif(check.name, "", [], notes=[reason], succeeded=False),
        summary=reason,
    )


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
