"""Bitbucket webhooks (Cloud and Data Center): pull request approvals and merges, reconciled.

Both flavours sign as Atlassian documents: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the
raw body>` keyed with the webhook's secret (Cloud: support.atlassian.com/bitbucket-cloud/docs/
manage-webhooks, "Secure webhooks"; Data Center: confluence.atlassian.com/bitbucketserver,
"Manage webhooks", "Securing your webhook"). `X-Event-Key` names the event
(`pullrequest:approved`, `pr:merged`, …). The delivery id is Cloud's `X-Request-UUID` (Cloud
also sends `X-Hook-UUID`, the webhook's own id) or Data Center's `X-Request-Id`.

Neither flavour signs a timestamp, so a replay is caught as GitHub's are: by the delivery id
and, under a new id, by the digest of the signed body. No Bitbucket event starts a run: pull
request approvals and merges on `factory/<run-id>` branches are reconciled with their run
(review/forge_events.py, review/reconcile.py); every other event is recorded as ignored.
"""

from __future__ import annotations

from codefactory.triggers.errors import DeliveryInvalid
from codefactory.triggers.port import Delivery, HeaderDoc, ParsedDelivery
from codefactory.triggers.settings import TriggerSettings
from codefactory.triggers.signing import require_hex_hmac

IGNORED = "Bitbucket events start no run (only `factory/` pull request reviews and merges are read)"


def delivery_id(delivery: Delivery) -> str:
    """Cloud's `X-Request-UUID`, else Data Center's `X-Request-Id`; "" when neither."""
    return (delivery.header("X-Request-UUID") or delivery.header("X-Request-Id")).strip()


class BitbucketWebhooks:
    """Verifies Bitbucket Cloud and Data Center deliveries; reads their id and event only."""

    name = "bitbucket"
    media_type = "application/json"
    headers = (
        HeaderDoc(name="X-Hub-Signature", description="`sha256=<hex HMAC-SHA256 of body>`"),
        HeaderDoc(
            name="X-Event-Key", description="Event, e.g. `pullrequest:approved`, `pr:merged`"
        ),
        HeaderDoc(name="X-Request-UUID", description="Delivery id (Cloud)", required=False),
        HeaderDoc(name="X-Hook-UUID", description="The webhook's id (Cloud)", required=False),
        HeaderDoc(name="X-Request-Id", description="Delivery id (Data Center)", required=False),
    )

    def __init__(self, settings: TriggerSettings | None = None) -> None:
        del settings

    def verify(self, delivery: Delivery, secret: str) -> None:
        require_hex_hmac(
            delivery,
            header="X-Hub-Signature",
            secret=secret,
            message=delivery.body,
            prefix="sha256=",
            delivery_id=delivery_id(delivery),
        )

    def read(self, delivery: Delivery) -> ParsedDelivery:
        found = delivery_id(delivery)
        event = delivery.header("X-Event-Key").strip()
        if not found or not event:
            raise DeliveryInvalid(self.name, found, "X-Request-UUID/-Id or X-Event-Key missing")
        return ParsedDelivery(delivery_id=found, event=event, ignored=IGNORED)
