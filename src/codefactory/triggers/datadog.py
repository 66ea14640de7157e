"""Datadog monitor alerts through the Webhooks integration.

Datadog signs nothing: the webhook's custom headers carry the shared secret
(`{"X-Codefactory-Token": "$CODEFACTORY_TOKEN"}`, a hidden custom variable) and the payload is
the JSON template in `tests/fixtures/webhooks/datadog/README.md`, built from Datadog's
variables: `$ID` names the delivery, `$DATE_POSIX` dates it, `$TAGS`' `service:` tag names the
repository, `$ALERT_TRANSITION` says whether the monitor triggered.
"""

from __future__ import annotations

from codefactory.domain import ChangeKind
from codefactory.triggers.errors import DeliveryInvalid
from codefactory.triggers.payload import epoch, json_object, required, text, trigger
from codefactory.triggers.port import Delivery, HeaderDoc, ParsedDelivery
from codefactory.triggers.settings import TriggerSettings
from codefactory.triggers.signing import require_token

TOKEN_HEADER = "X-Codefactory-Token"
FIRING = frozenset({"triggered", "re-triggered"})


def service_tag(tags: str) -> str:
    """The value of the first `service:` tag in Datadog's comma-separated `$TAGS`."""
    for tag in tags.split(","):
        key, _, value = tag.strip().partition(":")
        if key == "service" and value:
            return value
    return ""


class DatadogWebhooks:
    """Reads monitor notifications; only a triggered (or re-triggered) monitor asks for work."""

    name = "datadog"
    media_type = "application/json"
    headers = (HeaderDoc(name=TOKEN_HEADER, description="The shared secret (custom header)"),)

    def __init__(self, settings: TriggerSettings | None = None) -> None:
        del settings

    def verify(self, delivery: Delivery, secret: str) -> None:
        require_token(delivery, header=TOKEN_HEADER, secret=secret)

    def read(self, delivery: Delivery) -> ParsedDelivery:
        doc = json_object(delivery)
        delivery_id = text(doc, "id", limit=128).strip()
        if not delivery_id:
            raise DeliveryInvalid(self.name, "", "`id` ($ID) is missing or empty")
        transition = text(doc, "alert_transition", limit=64)
        event = f"monitor.{transition.lower() or 'unknown'}"
        sent_at = epoch(text(doc, "date_posix"))
        if transition.lower() not in FIRING:
            ignored = f"a `{transition}` notification asks for no work"
            return ParsedDelivery(
                delivery_id=delivery_id, event=event, sent_at=sent_at, ignored=ignored
            )
        monitor = required(self.name, delivery_id, doc, "alert_id")
        found = trigger(
            delivery,
            delivery_id=delivery_id,
            event=event,
            kind=ChangeKind.GENERAL_CHANGE,
            external_id=f"datadog-monitor-{monitor}",
            actor="datadog",
            repository=service_tag(text(doc, "tags")),
            title=required(self.name, delivery_id, doc, "alert_title"),
            body="\n".join(filter(None, (text(doc, "text_only_msg"), text(doc, "alert_query")))),
            links=[text(doc, "link")],
            autonomous=True,
            attributes={
                "priority": text(doc, "alert_priority"),
                "monitor": monitor,
                "scope": text(doc, "alert_scope"),
            },
        )
        return ParsedDelivery(delivery_id=delivery_id, event=event, sent_at=sent_at, trigger=found)
