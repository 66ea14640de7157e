"""The typed audit events of intake: webhook deliveries and sponsors refused.

Field names and values are those of the leaves written before the events were typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from codefactory.domain import AuditEvent, omitted_when_none


@dataclass(frozen=True, kw_only=True)
class WebhookAccepted(AuditEvent):
    """A signed delivery was stored with its run, before the `202`."""

    NAME: ClassVar[str] = "webhook-accepted"
    source: str
    delivery_id: str
    event: str
    payload_digest: str


@dataclass(frozen=True, kw_only=True)
class WebhookIgnored(AuditEvent):
    """A signed delivery that asks for no run (an event the source does not act on)."""

    NAME: ClassVar[str] = "webhook-ignored"
    source: str
    delivery_id: str
    event: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class WebhookReconciled(AuditEvent):
    """A forge's review or merge webhook was matched against a run (`outcome` what it did)."""

    NAME: ClassVar[str] = "webhook-reconciled"
    source: str
    delivery_id: str
    event: str
    payload_digest: str
    outcome: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class SponsorRefused(AuditEvent):
    """Nobody the directory knows may sponsor the trigger: its run is refused at once.
    `delivery_id` and `policy_ids` are present for a webhook delivery, absent for a ticket
    filed through the CLI."""

    NAME: ClassVar[str] = "sponsor-refused"
    trigger_id: str
    source: str
    sender_kind: str
    sender: str
    reason: str
    delivery_id: str | None = omitted_when_none()
    policy_ids: list[str] | None = omitted_when_none()


@dataclass(frozen=True, kw_only=True)
class WebhookRejections(AuditEvent):
    """Unauthenticated deliveries refused in one minute (`minute` ISO 8601, UTC), tallied
    per source, reason and HTTP status rather than one event each."""

    NAME: ClassVar[str] = "webhook-rejections"
    source: str
    reason: str
    status: int
    count: int
    minute: str
    clients: int
    first_delivery_id: str
    first_detail: str


@dataclass(frozen=True, kw_only=True)
class WebhookDuplicate(AuditEvent):
    """Repeats of a stored delivery in one minute, tallied per source and payload digest
    (the run is the envelope's `run_id`)."""

    NAME: ClassVar[str] = "webhook-duplicate"
    source: str
    payload_digest: str
    first_delivery_id: str
    count: int
    minute: str
    delivery_ids: int
    delivery_id: str


@dataclass(frozen=True, kw_only=True)
class CabApprovalDeliveryRefusals(AuditEvent):
    """Authenticated ServiceNow notices refused past the per-minute cap, tallied per client
    address and minute."""

    NAME: ClassVar[str] = "cab-approval-delivery-refusals"
    source: str
    client: str
    count: int
    minute: str
    first_delivery_id: str
