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
