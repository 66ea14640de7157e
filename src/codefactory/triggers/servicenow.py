"""ServiceNow incidents, sent by an outbound REST message from an `after insert` business rule.

ServiceNow has no webhook signature of its own: the REST message carries a shared secret in
the `X-Codefactory-Token` header (stored in the instance as a password2 system property).
The body is the template in `tests/fixtures/webhooks/servicenow/README.md`; `sent_at`
(GlideDateTime numeric value, ms) dates the delivery and the incident's `sys_id` names it.
"""

from __future__ import annotations

from codefactory.triggers.errors import DeliveryInvalid
from codefactory.triggers.labels import kind_from_labels
from codefactory.triggers.payload import epoch, json_object, required, text, trigger
from codefactory.triggers.port import Delivery, HeaderDoc, ParsedDelivery
from codefactory.triggers.settings import TriggerSettings
from codefactory.triggers.signing import require_token

TOKEN_HEADER = "X-Codefactory-Token"


class ServiceNowIncidents:
    """Reads `incident.created` messages; the configuration item names the repository."""

    name = "servicenow"
    media_type = "application/json"
    headers = (HeaderDoc(name=TOKEN_HEADER, description="The shared secret"),)

    def __init__(self, settings: TriggerSettings | None = None) -> None:
        del settings  # nothing to configure beyond the secret and the repository mapping

    def verify(self, delivery: Delivery, secret: str) -> None:
        require_token(delivery, header=TOKEN_HEADER, secret=secret)

    def read(self, delivery: Delivery) -> ParsedDelivery:
        doc = json_object(delivery)
        sys_id = text(doc, "sys_id", limit=64).strip()
        if not sys_id:
            raise DeliveryInvalid(self.name, "", "`sys_id` is missing or empty")
        event = text(doc, "event", limit=128)
        sent_at = epoch(text(doc, "sent_at"))
        if event != "incident.created":
            ignored = f"`{event}` is not an incident creation"
            return ParsedDelivery(delivery_id=sys_id, event=event, sent_at=sent_at, ignored=ignored)
        number = required(self.name, sys_id, doc, "number")
        instance = text(doc, "instance")
        link = f"https://{instance}.service-now.com/incident.do?sys_id={sys_id}" if instance else ""
        found = trigger(
            delivery,
            delivery_id=sys_id,
            event=event,
            kind=kind_from_labels((text(doc, "category"), text(doc, "subcategory"))),
            external_id=number,
            actor=text(doc, "opened_by") or text(doc, "caller_id") or "servicenow",
            repository=required(self.name, sys_id, doc, "cmdb_ci"),
            title=required(self.name, sys_id, doc, "short_description"),
            body=text(doc, "description"),
            links=[link],
            autonomous=True,
            sender_kind="servicenow",
            sender=text(doc, "opened_by") or text(doc, "caller_id"),
            attributes={
                "priority": text(doc, "priority"),
                "assignment_group": text(doc, "assignment_group"),
                "category": text(doc, "category"),
            },
        )
        return ParsedDelivery(delivery_id=sys_id, event=event, sent_at=sent_at, trigger=found)
