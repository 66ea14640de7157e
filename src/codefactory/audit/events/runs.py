"""The typed audit events of a run's life in the store and the loop.

Each class is one kind of fact; its `NAME` is the leaf's `name` and its fields (but the
envelope `actor`, `run_id`, `at`) are the leaf's `data`, exactly as written before the events
were typed, so old and new leaves read alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from codefactory.domain import AuditEvent, omitted_when_none


@dataclass(frozen=True, kw_only=True)
class TriggerReceived(AuditEvent):
    """A trigger was stored (its run, if any, follows)."""

    NAME: ClassVar[str] = "trigger-received"
    trigger_id: str
    source: str
    external_id: str
    kind: str
    repository: str
    payload_digest: str
    sender_kind: str
    sender: str
    caused_by: str


@dataclass(frozen=True, kw_only=True)
class RunCreated(AuditEvent):
    """A run was created for a trigger, on behalf of its sponsor, for one agent."""

    NAME: ClassVar[str] = "run-created"
    trigger_id: str
    kind: str
    sponsor: str
    agent_id: str
    repository: str
    repository_path: str
    engine: str


@dataclass(frozen=True, kw_only=True)
class RunStateChanged(AuditEvent):
    """The run moved from `previous` to `state`; the optional fields are the run's columns
    the move set (present only when set)."""

    NAME: ClassVar[str] = "run-state-changed"
    previous: str
    state: str
    reason: str
    base_commit: str | None = omitted_when_none()
    head_commit: str | None = omitted_when_none()
    branch: str | None = omitted_when_none()
    package_dir: str | None = omitted_when_none()


@dataclass(frozen=True, kw_only=True)
class PolicyDecided(AuditEvent):
    """Policy decided an action at a stage of the run."""

    NAME: ClassVar[str] = "policy-decided"
    stage: str
    action: str
    allowed: bool
    policy_ids: list[str]
    reasons: list[str]
    errors: list[str]


@dataclass(frozen=True, kw_only=True)
class CheckCompleted(AuditEvent):
    """One check of a verification round ran; `findings` is how many it reported."""

    NAME: ClassVar[str] = "check-completed"
    round: int
    check: str
    passed: bool
    findings: int
    summary: str


@dataclass(frozen=True, kw_only=True)
class PackageBuilt(AuditEvent):
    """The run's change package was written and recorded."""

    NAME: ClassVar[str] = "package-built"
    directory: str
    branch: str
    commit: str
    risk_level: str
    files: list[str]
    package_digest: str
    attestation_digest: str


@dataclass(frozen=True, kw_only=True)
class ReviewRecorded(AuditEvent):
    """A reviewer's verdict on the run's change, at `commit`."""

    NAME: ClassVar[str] = "review-recorded"
    approved: bool
    comment: str
    commit: str


@dataclass(frozen=True, kw_only=True)
class RunTakenOver(AuditEvent):
    """A worker took over a run whose owner stopped heartbeating (times ISO 8601, UTC)."""

    NAME: ClassVar[str] = "run-taken-over"
    previous_owner: str
    owner: str
    state: str
    last_heartbeat: str
    expired_at: str
    fence: int


@dataclass(frozen=True, kw_only=True)
class NoChangeNeeded(AuditEvent):
    """The engine found nothing to change; the run ends `no_change`."""

    NAME: ClassVar[str] = "no-change-needed"
    engine: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class AgentRefused(AuditEvent):
    """The run's agent may not act (unknown, suspended, retired)."""

    NAME: ClassVar[str] = "agent-refused"
    reason: str


@dataclass(frozen=True, kw_only=True)
class EngineRefused(AuditEvent):
    """The engine registry did not clear the run's engine."""

    NAME: ClassVar[str] = "engine-refused"
    engine: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class ContextGathered(AuditEvent):
    """The ticket's context was gathered: items kept, left out, failed, within a budget."""

    NAME: ClassVar[str] = "context-gathered"
    items: list[str]
    left_out: list[str]
    failures: list[str]
    budget_tokens: int


@dataclass(frozen=True, kw_only=True)
class EngineProposed(AuditEvent):
    """An engine proposed a change in a round: its paths and the change's digest."""

    NAME: ClassVar[str] = "engine-proposed"
    round: int
    engine: str
    engine_version: str
    rationale: str
    paths: list[str]
    change_digest: dict[str, str]
    """Path → SHA-256 of its new content (`deleted` for a removal)."""


@dataclass(frozen=True, kw_only=True)
class EngineWithoutModel(AuditEvent):
    """An engine ran a round without a model (a recipe)."""

    NAME: ClassVar[str] = "engine-without-model"
    engine: str
    round: int


@dataclass(frozen=True, kw_only=True)
class SetupRerun(AuditEvent):
    """The setup phase ran again after the change edited a dependency file."""

    NAME: ClassVar[str] = "setup-rerun"
    edited: list[str]
    installed: list[str]


@dataclass(frozen=True, kw_only=True)
class CommitRequested(AuditEvent):
    """The agent asked for a commit of `paths` on `branch` from `base_commit`; its leaf
    index is the commit's `Audit-Index` trailer."""

    NAME: ClassVar[str] = "commit-requested"
    branch: str
    base_commit: str
    paths: list[str]


@dataclass(frozen=True, kw_only=True)
class CommitCreated(AuditEvent):
    """The agent's signed commit was created on the run's branch."""

    NAME: ClassVar[str] = "commit-created"
    commit: str
    branch: str
    audit_index: int


@dataclass(frozen=True, kw_only=True)
class PackageSetAside(AuditEvent):
    """A package folder written but never recorded was moved aside before a rebuild."""

    NAME: ClassVar[str] = "package-set-aside"
    directory: str
    moved_to: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class ScopeChecked(AuditEvent):
    """Policy's second check on the actual diff (`ScopeCheck.audit_data()`)."""

    NAME: ClassVar[str] = "scope-checked"
    allowed: bool
    delivery: str
    requests: int
    denied: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class FindingWaived(AuditEvent):
    """A waiver kept one finding from blocking (`expires` ISO 8601, or None: no expiry)."""

    NAME: ClassVar[str] = "finding-waived"
    check: str
    rule: str
    path: str
    line: int
    fingerprint: str
    severity: str
    approver: str
    reason: str
    expires: str | None
