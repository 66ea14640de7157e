"""The view model of `/runs/{id}`: everything a reviewer reads before signing a verdict,
from the store, the audit log and the run's change package."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codefactory.audit.port import AuditRecord
from codefactory.domain import Finding, Run, TriggerEvent
from codefactory.identity.directory import Person
from codefactory.runs.report import engine_activity
from codefactory.web.dashboard.diff import Diff, diff_view
from codefactory.web.dashboard.package_check import (
    PackageCheck,
    PackageReading,
    opened_package,
    verify,
)
from codefactory.web.dashboard.package_files import (
    Missing,
    dsse_statement,
    rationale,
    read_json,
    read_text,
)
from codefactory.web.dashboard.proofs import RunProofs, run_proofs
from codefactory.web.dashboard.queue import segregation_refusal
from codefactory.web.dashboard.stages import Stage, stage_of
from codefactory.web.dashboard.verdicts import role_refusal, stage_for

if TYPE_CHECKING:
    from codefactory.factory import Factory


@dataclass(frozen=True, kw_only=True)
class CheckView:
    """One check of the last round: outcome, summary and its findings."""

    check: str
    passed: bool
    summary: str
    findings: tuple[Finding, ...]


@dataclass(frozen=True, kw_only=True)
class TimelineEntry:
    """One audit event of the run, its data as indented JSON."""

    seq: int
    at: str
    name: str
    actor: str
    data: str


@dataclass(frozen=True, kw_only=True)
class RunPage:
    """What `/runs/{id}` shows (each package part, or `Missing` with why)."""

    run: Run
    trigger: TriggerEvent | None
    viewer: Person
    stage: Stage | None
    """What the run waits for (review, QA or UAT sign-off), or None."""
    refusal: str
    """Why the viewer may not sign a verdict on this run ("" when they may)."""
    package: PackageCheck
    """The package digest the page verified, or why the package does not hold."""
    diff: Diff | Missing
    checks: tuple[CheckView, ...]
    evidence: tuple[tuple[str, str | Missing], ...] | Missing
    risk: dict[str, Any] | Missing
    rollback: str | Missing
    cab: dict[str, Any] | Missing
    rationale: list[tuple[str, str | Missing]] | Missing
    provenance: dict[str, Any] | Missing
    attestation: dict[str, Any] | Missing
    traffic: dict[str, Any]
    proofs: RunProofs
    timeline: tuple[TimelineEntry, ...]
    reviews: tuple[dict[str, Any], ...]


def last_round(factory: Factory, run_id: str) -> tuple[tuple[CheckView, ...], list[Finding]]:
    """The checks of the run's last verification round and that round's findings."""
    checks = factory.store.check_runs(run_id)
    findings = factory.store.findings(run_id)
    if not checks:
        return (), []
    latest = max(int(c["round"]) for c in checks)
    found = [f for number, f in findings if number == latest]
    views = tuple(
        CheckView(
            check=str(c["check"]),
            passed=bool(c["passed"]),
            summary=str(c["summary"]),
            findings=tuple(f for f in found if f.check == c["check"]),
        )
        for c in checks
        if int(c["round"]) == latest
    )
    return views, found


def timeline(events: list[AuditRecord]) -> tuple[TimelineEntry, ...]:
    """Every audit event of the run, in log order."""
    return tuple(
        TimelineEntry(
            seq=e.seq,
            at=e.at.isoformat(timespec="seconds"),
            name=e.name,
            actor=e.actor,
            data=json.dumps(e.data, indent=2, sort_keys=True, ensure_ascii=False, default=str),
        )
        for e in events
    )


def refusal_for(viewer: Person, run: Run, trigger: TriggerEvent | None) -> str:
    """Why `viewer` may not sign the verdict `run` waits for (segregation of duties, then
    the stage's role)."""
    return segregation_refusal(viewer, run, trigger) or role_refusal(viewer, stage_for(run))


def run_page(factory: Factory, run: Run, viewer: Person) -> RunPage:
    """Gather the run page of `run` for `viewer`: package files only as verified
    (`package_check`), with the problems found when they do not hold."""
    trigger = factory.store.get_trigger(run.trigger_id)
    stage = stage_of(run.state.value)
    checks, findings = last_round(factory, run.id)
    events = factory.store.audit_events(run.id)
    with opened_package(run.package_dir) as root:
        reading = PackageReading(root=root, folder=Path(run.package_dir))
        digest = verify(reading, run, factory.review.facts, trigger=trigger, awaited=bool(stage))
        read = reading.read
        patch = read_text(read, "change.patch")
        diff = patch if isinstance(patch, Missing) else diff_view(patch, findings)
        evidence = reading.evidence()
        risk, rollback, cab = (
            read_json(read, "risk.json"),
            read_text(read, "rollback.md"),
            read_json(read, "cab.json"),
        )
        why = rationale(read)
        provenance = dsse_statement(read, "provenance.dsse.json")
        attestation = dsse_statement(read, "attestation.dsse.json")
    problems = tuple(dict.fromkeys(reading.problems))  # each once, in the order found
    return RunPage(
        run=run,
        trigger=trigger,
        viewer=viewer,
        stage=stage,
        refusal=refusal_for(viewer, run, trigger),
        package=PackageCheck(digest="" if problems else digest, problems=problems),
        diff=diff,
        checks=checks,
        evidence=evidence,
        risk=risk,
        rollback=rollback,
        cab=cab,
        rationale=why,
        provenance=provenance,
        attestation=attestation,
        traffic=engine_activity(events)["model_traffic"],
        proofs=run_proofs(factory.audit, events, witnessing=len(factory.settings.audit.witnesses)),
        timeline=timeline(events),
        reviews=tuple(factory.store.reviews(run.id)),
    )
