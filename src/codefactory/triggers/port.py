"""The trigger ports: a ticket source parses a ticket; a webhook source verifies and reads a
delivery (the sender's own signature scheme and payload format) into a `TriggerEvent`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from codefactory.domain import TriggerEvent


class TriggerSource(Protocol):
    """One system work can come from (Jira, GitHub, Sentry, the CLI, a schedule)."""

    name: str

    def parse(self, payload: bytes, *, repository: str) -> TriggerEvent:
        """Parse an untrusted delivery; raises `TicketInvalid` with the reason."""
        ...


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One HTTP delivery as received: the raw body and the headers, names in lower case."""

    source: str
    headers: Mapping[str, str]
    body: bytes
    received_at: datetime

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True, kw_only=True)
class ParsedDelivery:
    """What a delivery says: its id, its event, when it was sent, and the work it asks for
    (`trigger`), or why it asks for none (`ignored`). `trigger.repository` is the sender's
    name for the repository; intake maps it to a checkout and its canonical id."""

    delivery_id: str
    event: str
    sent_at: datetime | None = None
    trigger: TriggerEvent | None = None
    ignored: str = ""


@dataclass(frozen=True, kw_only=True)
class HeaderDoc:
    """A request header a source sends, for the OpenAPI document."""

    name: str
    description: str
    required: bool = True


class WebhookSource(Protocol):
    """A sender of webhooks: how it signs, how it names deliveries, what its payloads mean."""

    name: str
    media_type: str
    headers: tuple[HeaderDoc, ...]

    def verify(self, delivery: Delivery, secret: str) -> None:
        """Raise `SignatureInvalid` unless the delivery proves it comes from the sender."""
        ...

    def read(self, delivery: Delivery) -> ParsedDelivery:
        """Read a verified delivery; raise `DeliveryInvalid` for a malformed body."""
        ...
