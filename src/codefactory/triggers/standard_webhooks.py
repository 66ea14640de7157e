"""The generic webhook (`POST /webhooks/webhook`), signed per the Standard Webhooks spec.

`webhook-id` names the delivery, `webhook-timestamp` (seconds) dates it, `webhook-signature`
holds space-separated `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`; the key is the
base64 after `whsec_` in the secret (or the secret's bytes). The body is
`{"type": "change.requested", "timestamp": …, "data": {repository, kind, title, body,
requested_by, external_id, labels, links, autonomous}}`.

The sender is the webhook's key (`triggers.webhook_key`, a `webhook` identity): whoever holds
the secret. `data.requested_by` is only a claim, kept as the `requested_by` attribute; it
names the sponsor only when policy lets the key act for that person (`Action::"act-for"`).
"""

from __future__ import annotations

import base64

from codefactory.domain import ChangeKind
from codefactory.triggers.errors import DeliveryInvalid, SignatureInvalid
from codefactory.triggers.payload import (
    clean,
    epoch,
    items,
    json_object,
    label_names,
    mapping,
    required,
    text,
    trigger,
)
from codefactory.triggers.port import Delivery, HeaderDoc, ParsedDelivery
from codefactory.triggers.settings import TriggerSettings
from codefactory.triggers.signing import hmac_sha256, same, standard_webhooks_key

EVENT = "change.requested"


class StandardWebhooks:
    """Any system that can sign a Standard Webhook can ask for a change."""

    name = "webhook"
    media_type = "application/json"
    headers = (
        HeaderDoc(name="webhook-id", description="Delivery id"),
        HeaderDoc(name="webhook-timestamp", description="Seconds since the epoch"),
        HeaderDoc(name="webhook-signature", description="`v1,<base64 HMAC-SHA256>` …"),
    )

    def __init__(self, settings: TriggerSettings | None = None) -> None:
        self.key_name = (settings or TriggerSettings()).webhook_key

    def verify(self, delivery: Delivery, secret: str) -> None:
        delivery_id = delivery.header("webhook-id")
        timestamp = delivery.header("webhook-timestamp")
        given = delivery.header("webhook-signature").split()
        if not delivery_id or not timestamp or not given:
            raise SignatureInvalid(
                self.name, delivery_id, "webhook-id, -timestamp or -signature missing"
            )
        signed = f"{delivery_id}.{timestamp}.".encode() + delivery.body
        expected = (
            "v1," + base64.b64encode(hmac_sha256(standard_webhooks_key(secret), signed)).decode()
        )
        if not any(same(candidate, expected) for candidate in given):
            raise SignatureInvalid(self.name, delivery_id, "no webhook-signature matches")

    def read(self, delivery: Delivery) -> ParsedDelivery:
        delivery_id = delivery.header("webhook-id").strip()
        if not delivery_id:
            raise DeliveryInvalid(self.name, "", "the webhook-id header is missing")
        doc = json_object(delivery, delivery_id)
        event = text(doc, "type", limit=128)
        sent_at = epoch(delivery.header("webhook-timestamp"))
        if event != EVENT:
            ignored = f"`{event}` is not `{EVENT}`"
            return ParsedDelivery(
                delivery_id=delivery_id, event=event, sent_at=sent_at, ignored=ignored
            )
        data = mapping(doc, "data")
        try:
            kind = ChangeKind(text(data, "kind"))
        except ValueError:
            kinds = ", ".join(kind.value for kind in ChangeKind)
            raise DeliveryInvalid(
                self.name, delivery_id, f"`data.kind` is none of {kinds}"
            ) from None
        autonomous = data.get("autonomous") is True
        requested_by = (
            text(data, "requested_by", limit=200).strip()
            if autonomous
            else required(self.name, delivery_id, data, "requested_by")
        )
        found = trigger(
            delivery,
            delivery_id=delivery_id,
            event=event,
            kind=kind,
            external_id=text(data, "external_id") or delivery_id,
            actor=f"{self.name}:{self.key_name}",
            repository=required(self.name, delivery_id, data, "repository"),
            title=required(self.name, delivery_id, data, "title"),
            body=text(data, "body"),
            labels=label_names(items(data, "labels")),
            links=[clean(link) for link in items(data, "links") if isinstance(link, str)],
            autonomous=autonomous,
            attributes={"requested_by": requested_by} if requested_by else {},
            sender_kind="webhook",
            sender=self.key_name,
        )
        return ParsedDelivery(delivery_id=delivery_id, event=event, sent_at=sent_at, trigger=found)
