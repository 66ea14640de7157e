"""The typed audit events of the regulated track after review: the CAB and the sign-offs.

Field names and values are those of the leaves written before the events were typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from codefactory.domain import AuditEvent, omitted_when_none


@dataclass(frozen=True, kw_only=True)
class CabApproved(AuditEvent):
    """The CAB approved the run's change request in ServiceNow."""

    NAME: ClassVar[str] = "cab-approved"
    number: str
    sys_id: str


@dataclass(frozen=True, kw_only=True)
class CabRejected(AuditEvent):
    """The CAB rejected the run's change request; the run ends `rejected`."""

    NAME: ClassVar[str] = "cab-rejected"
    number: str
    sys_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class CabApprovalAwaited(AuditEvent):
    """The change request is not approved yet (`approval` as ServiceNow says it)."""

    NAME: ClassVar[str] = "cab-approval-awaited"
    number: str
    approval: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class CabApprovalCheckFailed(AuditEvent):
    """ServiceNow could not be asked about the change request."""

    NAME: ClassVar[str] = "cab-approval-check-failed"
    number: str
    error: str


@dataclass(frozen=True, kw_only=True)
class CabApprovalDelivered(AuditEvent):
    """A signed ServiceNow notice about the change request arrived."""

    NAME: ClassVar[str] = "cab-approval-delivered"
    number: str
    sys_id: str
    said_approval: str
    delivery_digest: str


@dataclass(frozen=True, kw_only=True)
class CabApprovalDeliveryRefused(AuditEvent):
    """A ServiceNow notice was refused (bad signature, unknown change)."""

    NAME: ClassVar[str] = "cab-approval-delivery-refused"
    reason: str
    delivery_digest: str


@dataclass(frozen=True, kw_only=True)
class SignOffSigned(AuditEvent):
    """A QA or UAT sign-off, signed with the signer's own SSH key, verified and recorded."""

    NAME: ClassVar[str] = "sign-off-signed"
    stage: str
    verdict: str
    reason: str
    statement_digest: str
    key_fingerprint: str
    package_digest: str
    commit: str
    statement: str
    allowed_signers: str


@dataclass(frozen=True, kw_only=True)
class SignOffRefused(AuditEvent):
    """A sign-off was refused; nothing moved. The sign-off desk names the `claimed_signer`
    and the `stage`; the dashboard, refusing a forged form, names the `claimed_reviewer`
    (each field absent from the other's events, as they were before)."""

    NAME: ClassVar[str] = "sign-off-refused"
    reason: str
    statement_digest: str
    key_fingerprint: str
    claimed_signer: str | None = omitted_when_none()
    stage: str | None = omitted_when_none()
    claimed_reviewer: str | None = omitted_when_none()
