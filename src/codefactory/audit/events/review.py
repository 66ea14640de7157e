"""The typed audit events of review and hand-off: verdicts, forge approvals, change requests.

Field names and values are those of the leaves written before the events were typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from codefactory.domain import AuditEvent, omitted_when_none


@dataclass(frozen=True, kw_only=True)
class ReviewSigned(AuditEvent):
    """A reviewer's verdict, signed with their own SSH key, was verified and recorded."""

    NAME: ClassVar[str] = "review-signed"
    verdict: str
    """`approve` or `reject`."""
    statement_digest: str
    key_fingerprint: str
    package_digest: str
    attestation_digest: str
    commit: str
    statement: str
    """The signed statement's path inside the package folder."""
    allowed_signers: str


@dataclass(frozen=True, kw_only=True)
class ReviewRefused(AuditEvent):
    """A verdict was refused (bad signature, unknown key, replay); nothing moved."""

    NAME: ClassVar[str] = "review-refused"
    claimed_reviewer: str
    reason: str
    statement_digest: str
    key_fingerprint: str


@dataclass(frozen=True, kw_only=True)
class ForgeApprovalRecorded(AuditEvent):
    """A forge review approving the run's pull request was recorded as its approval."""

    NAME: ClassVar[str] = "forge-approval-recorded"
    package_digest: str
    attestation_digest: str
    forge: str
    request: str
    review_id: str
    commit: str


@dataclass(frozen=True, kw_only=True)
class ForgeApprovalRefused(AuditEvent):
    """A forge approval was refused. The review desk names the `claimed_reviewer` and the
    `reason` (not a directory person, the sponsor, a replay); the webhook reconciler, whose
    forge did not confirm the approval, names the webhook's facts and `why` (each field
    absent from the other's events, as they were before)."""

    NAME: ClassVar[str] = "forge-approval-refused"
    forge: str
    request: str
    review_id: str
    commit: str
    claimed_reviewer: str | None = omitted_when_none()
    reason: str | None = omitted_when_none()
    kind: str | None = omitted_when_none()
    repository: str | None = omitted_when_none()
    branch: str | None = omitted_when_none()
    login: str | None = omitted_when_none()
    abbreviated_commit: bool | None = omitted_when_none()
    why: str | None = omitted_when_none()
    delivery_id: str | None = omitted_when_none()


@dataclass(frozen=True, kw_only=True)
class ChangeRequestFiled(AuditEvent):
    """A ServiceNow change request was filed for the run, its package attached."""

    NAME: ClassVar[str] = "change-request-filed"
    number: str
    sys_id: str
    attached: str


@dataclass(frozen=True, kw_only=True)
class ChangeRequestFailed(AuditEvent):
    """Filing the change request failed (`number` empty when none was created)."""

    NAME: ClassVar[str] = "change-request-failed"
    number: str
    error: str


@dataclass(frozen=True, kw_only=True)
class ForgeBranchPushed(AuditEvent):
    """The run's branch was pushed to the forge (`created`: the branch is new there)."""

    NAME: ClassVar[str] = "forge-branch-pushed"
    forge: str
    repository: str
    remote: str
    branch: str
    commit: str
    created: bool


@dataclass(frozen=True, kw_only=True)
class PullRequestOpened(AuditEvent):
    """The run's draft request was opened under its sponsor's grant (`sponsor` absent in
    events written before it was recorded: the actor named them then)."""

    NAME: ClassVar[str] = "pull-request-opened"
    forge: str
    repository: str
    number: str
    url: str
    author: str
    commit: str
    branch: str
    sponsor: str | None = omitted_when_none()


@dataclass(frozen=True, kw_only=True)
class CodeScanningUploaded(AuditEvent):
    """The package's SARIF was uploaded to the forge's code scanning."""

    NAME: ClassVar[str] = "code-scanning-uploaded"
    forge: str
    repository: str
    sarif_id: str
    commit: str
    sha256: str


@dataclass(frozen=True, kw_only=True)
class CommitStatusSet(AuditEvent):
    """The gate's verdict was set as the head commit's status on the forge."""

    NAME: ClassVar[str] = "commit-status-set"
    forge: str
    repository: str
    commit: str
    state: str
    description: str


@dataclass(frozen=True, kw_only=True)
class ForgePublishFailed(AuditEvent):
    """A publishing step failed (`status` the forge's HTTP status, 0 when none)."""

    NAME: ClassVar[str] = "forge-publish-failed"
    forge: str
    repository: str
    step: str
    error: str
    status: int
    message: str


@dataclass(frozen=True, kw_only=True)
class NotificationSent(AuditEvent):
    """A person was told about a run (`asked`: what of them: review, sign-off, ready...)."""

    NAME: ClassVar[str] = "notification-sent"
    channel: str
    to: str
    asked: str


@dataclass(frozen=True, kw_only=True)
class NotificationFailed(AuditEvent):
    """Telling a person about a run failed on a channel."""

    NAME: ClassVar[str] = "notification-failed"
    error: str
    channel: str
    to: str
    asked: str


@dataclass(frozen=True, kw_only=True)
class AlertSent(AuditEvent):
    """A security alert went to a person holding the security role."""

    NAME: ClassVar[str] = "alert-sent"
    channel: str
    to: str
    alert: str


@dataclass(frozen=True, kw_only=True)
class AlertFailed(AuditEvent):
    """A security alert could not be sent on a channel."""

    NAME: ClassVar[str] = "alert-failed"
    error: str
    channel: str
    to: str
    alert: str


@dataclass(frozen=True, kw_only=True)
class AlertUndelivered(AuditEvent):
    """A security alert reached nobody (no channel, or nobody with an address)."""

    NAME: ClassVar[str] = "alert-undelivered"
    alert: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class JiraUpdated(AuditEvent):
    """The run's Jira issue was told its new state (`done`: each change made)."""

    NAME: ClassVar[str] = "jira-updated"
    issue: str
    state: str
    done: list[str]


@dataclass(frozen=True, kw_only=True)
class JiraUpdateFailed(AuditEvent):
    """Updating the run's Jira issue failed after the changes in `done`."""

    NAME: ClassVar[str] = "jira-update-failed"
    issue: str
    state: str
    done: list[str]
    error: str


@dataclass(frozen=True, kw_only=True)
class ForgeProtectionChecked(AuditEvent):
    """`codefactory forge check`: whether the repository's branch protection holds what the
    factory's approvals rely on (`gaps` what it lacks; `error` when it could not be read)."""

    NAME: ClassVar[str] = "forge-protection-checked"
    caller: str
    forge: str
    repository: str
    branch: str
    outcome: str
    gaps: list[str]
    error: str
    error_kind: str


@dataclass(frozen=True, kw_only=True)
class VerdictRefusals(AuditEvent):
    """A person's refused verdict posts past the per-minute budget, counted in one event
    per person and minute (`minute` ISO 8601, UTC)."""

    NAME: ClassVar[str] = "verdict-refusals"
    per_minute: int
    count: int
    minute: str
    first_run_id: str


@dataclass(frozen=True, kw_only=True)
class ForgeGrantStored(AuditEvent):
    """A person granted the factory an OAuth token on the forge (`expires_at` Unix seconds,
    0 when it does not expire); never the token."""

    NAME: ClassVar[str] = "forge-grant-stored"
    forge: str
    person: str
    scope: str
    expires_at: float


@dataclass(frozen=True, kw_only=True)
class ForgeGrantRefused(AuditEvent):
    """A forge grant was not stored (the provider's error, another account, ...)."""

    NAME: ClassVar[str] = "forge-grant-refused"
    forge: str
    person: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class ForgeGrantRemoved(AuditEvent):
    """A person's forge grant was forgotten (`existed`: there was one)."""

    NAME: ClassVar[str] = "forge-grant-removed"
    forge: str
    person: str
    existed: bool


@dataclass(frozen=True, kw_only=True)
class ForgeWebhookEvent(AuditEvent):
    """The facts of a forge's review or merge webhook, as the reconciler records them (forge
    text escaped); `abbreviated_commit` present (True) when the forge sent 12 digits. The
    base of the reconciler's events, not a kind of its own."""

    forge: str
    kind: str
    repository: str
    request: str
    branch: str
    commit: str
    login: str
    review_id: str
    delivery_id: str = ""
    abbreviated_commit: bool | None = omitted_when_none()


@dataclass(frozen=True, kw_only=True)
class ForgeChangesRequested(ForgeWebhookEvent):
    """A reviewer asked for changes on the forge (`person`: the directory person of the
    login; the webhook's word, not confirmed)."""

    NAME: ClassVar[str] = "forge-changes-requested"
    person: str


@dataclass(frozen=True, kw_only=True)
class ForgeEventUnmatched(ForgeWebhookEvent):
    """A forge webhook matched no run or person (`why`)."""

    NAME: ClassVar[str] = "forge-event-unmatched"
    why: str


@dataclass(frozen=True, kw_only=True)
class MergeRecorded(ForgeWebhookEvent):
    """The run's approved, packaged commit was merged on the forge."""

    NAME: ClassVar[str] = "merge-recorded"
    merged_commit: str
    merge_commit: str
    packaged_commit: str
    merged_by: str
    merged_by_person: str
    run_state: str


@dataclass(frozen=True, kw_only=True)
class MergeUnapproved(ForgeWebhookEvent):
    """A merge the factory did not approve (`why`): another commit, another branch, a run
    not approved; the security role is alerted."""

    NAME: ClassVar[str] = "merge-unapproved"
    merged_commit: str
    merge_commit: str
    packaged_commit: str
    merged_by: str
    merged_by_person: str
    run_state: str
    why: str
