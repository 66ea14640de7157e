"""Domain types shared by every part of the loop.

This module imports nothing of the project: ports, adapters and the loop all speak in these
types, so the seams stay visible. Everything is a frozen, keyword-only dataclass or an Enum.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar


class RunState(enum.StrEnum):
    """The states of the run state machine, in loop order, then the terminal outcomes that
    are not a hand-off: `no_change` (the ticket needs no change: the pin is already safe, the
    lint finding is gone; the reason says why), `refused`, `failed`, `rejected`.

    After `approved` a run ends `handed_off` (the embedded default), or, on the regulated
    track (`review.sign_offs`), moves through `in_qa` and `in_uat`, each left by a signed
    sign-off, to `accepted`, or to `rejected` with the signer's reason."""

    RECEIVED = "received"
    AUTHORIZED = "authorized"
    PROVISIONED = "provisioned"
    CONTEXT_READY = "context_ready"
    PROPOSING = "proposing"
    VERIFYING = "verifying"
    VERIFIED = "verified"
    PACKAGED = "packaged"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    HANDED_OFF = "handed_off"
    IN_QA = "in_qa"
    IN_UAT = "in_uat"
    ACCEPTED = "accepted"
    NO_CHANGE = "no_change"
    REFUSED = "refused"
    FAILED = "failed"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {
        RunState.HANDED_OFF,
        RunState.ACCEPTED,
        RunState.NO_CHANGE,
        RunState.REFUSED,
        RunState.FAILED,
        RunState.REJECTED,
    }
)

# The run state machine (ARCHITECTURE.md, "The loop"): state → states it may move to.
# Any non-terminal state may also end `failed`.
ALLOWED_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.RECEIVED: frozenset({RunState.AUTHORIZED, RunState.REFUSED}),
    RunState.AUTHORIZED: frozenset({RunState.PROVISIONED}),
    RunState.PROVISIONED: frozenset({RunState.CONTEXT_READY}),
    RunState.CONTEXT_READY: frozenset({RunState.PROPOSING}),
    # `no_change`: the engine found nothing the ticket asks to change, before any round's
    # change (engines raise `NothingToDo`); a later round with nothing to do has failed.
    RunState.PROPOSING: frozenset({RunState.VERIFYING, RunState.NO_CHANGE}),
    RunState.VERIFYING: frozenset({RunState.PROPOSING, RunState.VERIFIED}),
    RunState.VERIFIED: frozenset({RunState.PACKAGED, RunState.REFUSED}),
    RunState.PACKAGED: frozenset({RunState.IN_REVIEW}),
    RunState.IN_REVIEW: frozenset({RunState.APPROVED, RunState.REJECTED}),
    # `handed_off` by default; the regulated track hands off to QA (or straight to UAT when
    # QA is not a stage), each stage left by a signed sign-off (runs/sign_offs.py).
    # `rejected`: the CAB rejected the change request the hand-off waited for.
    RunState.APPROVED: frozenset(
        {RunState.HANDED_OFF, RunState.IN_QA, RunState.IN_UAT, RunState.REJECTED}
    ),
    RunState.IN_QA: frozenset({RunState.IN_UAT, RunState.ACCEPTED, RunState.REJECTED}),
    RunState.IN_UAT: frozenset({RunState.ACCEPTED, RunState.REJECTED}),
}


RESUMABLE_STATES = frozenset(
    {
        RunState.PROVISIONED,
        RunState.CONTEXT_READY,
        RunState.PROPOSING,
        RunState.VERIFYING,
        RunState.VERIFIED,
    }
)
"""States whose work lives in a workspace: a run a stopped worker left in one is resumed by
provisioning again (`→ provisioned`), the workspace having gone with the worker."""


def may_transition(current: RunState, target: RunState) -> bool:
    """Whether the state machine allows `current → target` (a resumed run may go back to
    `provisioned` from a state in `RESUMABLE_STATES`)."""
    if current.is_terminal:
        return False
    if target is RunState.PROVISIONED and current in RESUMABLE_STATES:
        return True
    return target is RunState.FAILED or target in ALLOWED_TRANSITIONS.get(current, frozenset())


class ChangeKind(enum.StrEnum):
    """Kinds of change a trigger may ask for; the Cedar action names."""

    BUMP_DEPENDENCY = "bump_dependency"
    FIX_LINT = "fix_lint"
    MODIFY_CI = "modify_ci"
    MODIFY_INFRASTRUCTURE = "modify_infrastructure"
    GENERAL_CHANGE = "general_change"


class Severity(enum.StrEnum):
    """Finding severities, mapped onto SARIF levels at the edge."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def sarif_level(self) -> str:
        return {"low": "note", "medium": "warning"}.get(self.value, "error")


@dataclass(frozen=True, kw_only=True)
class TriggerEvent:
    """A request for work from outside, parsed from a ticket, webhook or schedule."""

    source: str
    kind: ChangeKind
    external_id: str
    actor: str
    repository: str
    """The sender's name for the repository (`acme/payments`, a Jira project key); intake
    replaces it with the canonical id (docs/repositories.md) before the trigger is stored."""
    title: str
    body: str
    labels: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    received_at: datetime
    payload_digest: str
    delivery_id: str = ""
    """The sender's id of the delivery (`X-GitHub-Delivery`, …); empty for the CLI."""
    event: str = ""
    """The sender's event name, e.g. `issues.labeled`, `jira:issue_updated`."""
    autonomous: bool = False
    """No human asked for this (an alert, a scan, a schedule): the sponsor comes from config."""
    attributes: dict[str, str] = field(default_factory=dict)
    """Facts policy may read (`status`, `remote_repository`, …); untrusted like the text."""
    sender_kind: str = ""
    """The kind of `sender` (an `IdentityKind` value: `github`, `jira`, `unix`, `webhook`…);
    empty when the delivery names no sender (an alert, a schedule)."""
    sender: str = ""
    """The sender identity as the signed delivery carries it (GitHub `sender.login`, Slack
    `user_id`, the OS account of the CLI, a generic webhook's key name); never a claimed
    `reporter` or `requested_by`."""
    caused_by: str = ""
    """`user:<person id>` of the directory person who caused the trigger; empty for an
    autonomous trigger no known human caused."""


@dataclass(frozen=True, kw_only=True)
class Decision:
    """A policy answer: allowed or not, the deciding policies and their stated reasons."""

    allowed: bool
    policy_ids: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        if self.reasons:
            return "; ".join(self.reasons)
        if self.errors:
            return "policy evaluation error: " + "; ".join(self.errors)
        return "allowed" if self.allowed else "no policy permits this request (default deny)"


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One result of a check: where, which rule, how bad, and whether it blocks."""

    check: str
    rule: str
    message: str
    severity: Severity
    path: str = ""
    line: int = 0
    blocking: bool = True
    fingerprint: str = ""
    """Stable identity across commits (SARIF `partialFingerprints`); empty: not compared."""
    baseline_state: str = ""
    """SARIF `baselineState` against the base commit: `new`, `unchanged`, `absent` or empty."""
    waived_by: str = ""
    """The approver of the waiver that keeps this finding from blocking, if any."""


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """What one check produced for one round: its findings and its evidence file."""

    check: str
    passed: bool
    findings: tuple[Finding, ...] = ()
    evidence_name: str = ""
    evidence: str = ""
    summary: str = ""
    skipped: str = ""
    """Why the check did not run (`not-applicable`, `skipped-by-repository-config`); empty
    when it ran. A skipped check blocks nothing and is never shown as passed."""


@dataclass(frozen=True, kw_only=True)
class ExecResult:
    """The outcome of one command inside a sandbox."""

    command: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    limit_hit: str = ""
    """The sandbox limit that killed the command (`wall-clock`, `cpu`, `memory`, `processes`,
    `output`, `file-size`, `disk`); empty when none was hit."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.limit_hit


@dataclass(frozen=True, kw_only=True)
class FileChange:
    """One file the engine changed: its path and the content after the change (None: deleted)."""

    path: str
    content: bytes | None


@dataclass(frozen=True, kw_only=True)
class Change:
    """The engine's change, harvested from the workspace as files relative to its root."""

    files: tuple[FileChange, ...]

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files)

    @property
    def is_empty(self) -> bool:
        return not self.files


@dataclass(frozen=True, kw_only=True)
class Task:
    """What the engine is asked to do, with the context gathered for it."""

    kind: ChangeKind
    title: str
    body: str
    context: dict[str, Any] = field(default_factory=dict)
    """Citation (`jira:PAY-7`, `repository:app/payments.py`) → the item's masked text."""
    sources: tuple[dict[str, Any], ...] = ()
    """What the context was gathered from, one record per item (source, id, title, uri,
    data class, masked counts, truncated): the design rationale cites them."""


@dataclass(frozen=True, kw_only=True)
class Proposal:
    """An engine's answer: a rationale and the notes it left for the reviewer."""

    engine: str
    engine_version: str
    rationale: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class StateChange:
    """One recorded transition of a run."""

    state: RunState
    at: datetime
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Run:
    """A run as stored: its trigger, sponsor, current state and history."""

    id: str
    trigger_id: str
    kind: ChangeKind
    repository: str
    """The repository's canonical id (`acme/payments`, `local:/srv/payments`; see
    docs/repositories.md): what the forge, policy, the store and the dashboard name it by."""
    sponsor: str
    agent_id: str
    state: RunState
    reason: str
    base_commit: str
    head_commit: str
    branch: str
    package_dir: str
    created_at: datetime
    engine: str = ""
    """The engine's registry name (`recipe:lint-fix`, `agent:pydantic-ai`, `cli:codex`)."""
    repository_path: str = ""
    """The local git repository the run reads (an absolute path): where the repository is
    checked out here, not what it is; empty for a delivery no repository was mapped to."""
    history: tuple[StateChange, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ChangePackage:
    """The reviewable output of a run: where it is and what it holds."""

    run_id: str
    directory: Path
    branch: str
    commit: str
    risk_level: str
    files: tuple[str, ...]
    package_digest: str = ""
    """`sha256:<hex>` of `manifest.json` as built (what the issuer attests)."""
    attestation_digest: str = ""
    """`sha256:<hex>` of the issuer's `attestation.dsse.json`; empty when none was signed."""


@dataclass(frozen=True, kw_only=True)
class Review:
    """A human verdict on a run's change."""

    run_id: str
    reviewer: str
    approved: bool
    comment: str
    at: datetime


ENVELOPE = frozenset({"actor", "run_id", "at"})
"""The fields every audit event has; the others are its `data`."""


def omitted_when_none() -> Any:
    """A field whose key is left out of `data` when it is None (a key some writers omit)."""
    return field(default=None, metadata={"omit_none": True})


_DATA_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {}


def _data_fields(kind: type) -> tuple[tuple[str, bool], ...]:
    """Each data field of an event class and whether it is left out while None (cached:
    an event's data is built on every append)."""
    found = _DATA_FIELDS.get(kind)
    if found is None:
        found = tuple(
            (spec.name, bool(spec.metadata.get("omit_none")))
            for spec in fields(kind)
            if spec.name not in ENVELOPE
        )
        _DATA_FIELDS[kind] = found
    return found


@dataclass(frozen=True, kw_only=True)
class AuditEvent:
    """One fact for the audit log: who did it, about which run, when, and its fields.

    The base of the typed events (`codefactory.audit.events`): a subclass names its kind in
    `NAME` (a stable kebab-case string, the leaf's `name`) and declares its fields, which
    are the leaf's `data` (JSON values, exactly as stored). `name` and `data` are derived, so
    a log adapter reads every event the same way.
    """

    NAME: ClassVar[str] = ""
    actor: str
    run_id: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def name(self) -> str:
        """The event's kind, e.g. `commit-created`."""
        return self.NAME

    @property
    def data(self) -> dict[str, Any]:
        """The event's fields but the envelope, as a JSON object; a field made with
        `omitted_when_none()` is left out while it is None."""
        out: dict[str, Any] = {}
        for name, omit_none in _data_fields(type(self)):
            value = getattr(self, name)
            if value is None and omit_none:
                continue
            out[name] = value
        return out


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(AuditEvent):
    """An event of a kind this code has no class for (an old log, another version), or
    one written through a deprecated string entry point: its name and data as they are."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.kind

    @property
    def data(self) -> dict[str, Any]:
        return self.payload
