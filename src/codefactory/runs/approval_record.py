"""The approval a hand-off acts on, read from the audit log, and the `approval.json` it writes.

The hand-off may run long after the verdict (the CAB meets weekly), so it never relies on
what `decide` held in memory: `ApprovalRecord.latest` reads the run's last approval from the
audit log (a `review-signed` approve verdict, or a `forge-approval-recorded` review), and the
hand-off re-establishes the signed facts against it before anything is handed on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from codefactory.audit.events import ForgeApprovalRecorded, ReviewSigned, typed
from codefactory.audit.port import AuditRecord
from codefactory.domain import Run
from codefactory.review.change_requests import CabAnswer

SIGNED_EVENT = ReviewSigned.NAME
"""The audit event of an accepted verdict: statement digest, key fingerprint, package digest."""
FORGE_APPROVAL_EVENT = ForgeApprovalRecorded.NAME
"""A forge review approval by a directory reviewer, delivered by a signed webhook."""


@dataclass(frozen=True, kw_only=True)
class ApprovalRecord:
    """The approval a hand-off acts on, as the audit log recorded it."""

    approved_by: str
    """The approver's person id."""
    at: datetime
    commit: str
    package_digest: str
    evidence: Mapping[str, str] = field(default_factory=dict)
    """`statement_digest` and `key_fingerprint` of a signed verdict, or `forge`, `request`
    and `review_id` of a forge review."""

    @classmethod
    def latest(cls, events: Iterable[AuditRecord]) -> ApprovalRecord | None:
        """The run's last approval (a signed approve verdict or a forge approval); None when
        it has none."""
        found = [
            e
            for e in map(typed, events)
            if (isinstance(e, ReviewSigned) and e.verdict == "approve")
            or isinstance(e, ForgeApprovalRecorded)
        ]
        if not found:
            return None
        match last := found[-1]:
            case ReviewSigned():
                evidence = {
                    "statement_digest": last.statement_digest,
                    "key_fingerprint": last.key_fingerprint,
                    "statement": last.statement,
                }
            case ForgeApprovalRecorded():
                evidence = {
                    "forge": last.forge,
                    "request": last.request,
                    "review_id": last.review_id,
                }
        return cls(
            approved_by=last.actor.removeprefix("user:"),
            at=last.at,
            commit=last.commit,
            package_digest=last.package_digest,
            evidence=evidence,
        )


def approval_document(
    run: Run,
    approval: ApprovalRecord,
    *,
    attestation_digest: str,
    sponsor: str,
    change: CabAnswer | None,
    stages: Iterable[str],
) -> dict[str, Any]:
    """The `approval.json` the hand-off writes into the package."""
    pending = [stage.upper() for stage in stages]
    return {
        "run_id": run.id,
        "approved_by": approval.approved_by,
        "approved_at": approval.at.isoformat(),
        **approval.evidence,
        "package_digest": approval.package_digest,
        "attestation_digest": attestation_digest,
        "commit": approval.commit,
        "branch": run.branch,
        "sponsor": sponsor,
        "change_request": change.change.number if change else "",
        "cab_approval": change.approval if change else "not required",
        "qa_evidence": qa_evidence(run),
        "next_step": (
            f"signed sign-offs by {' then '.join(pending)} (`codefactory review sign-off`), "
            "then merge by an accountable human"
            if pending
            else "QA and UAT on the branch, then merge by an accountable human"
        ),
    }


def qa_evidence(run: Run) -> dict[str, Any]:
    """Where QA finds its evidence in the package: the checks' reports (`evidence/`: the
    tests' JUnit report names the tests that reach each changed function), the rollback
    plan and the test plan (`cab.json` `test_plan`)."""
    folder = Path(run.package_dir) if run.package_dir else None
    reports = (
        sorted(p.relative_to(folder).as_posix() for p in (folder / "evidence").iterdir())
        if folder is not None and (folder / "evidence").is_dir()
        else []
    )
    return {"check_reports": reports, "rollback_plan": "rollback.md", "test_plan": "cab.json"}


def write_approval(run: Run, document: dict[str, Any]) -> None:
    """Write `approval.json` into the run's package (a file added after the build)."""
    if run.package_dir:
        target = Path(run.package_dir) / "approval.json"
        target.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
