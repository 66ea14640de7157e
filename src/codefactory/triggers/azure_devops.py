"""Azure DevOps service hooks (the *Web Hooks* consumer): pull request votes and merges,
reconciled.

Azure DevOps cannot sign a body. A Web Hooks subscription can send HTTP Basic credentials
(the subscription's *Basic authentication username* and *password*) and custom headers
(learn.microsoft.com/azure/devops/service-hooks/services/webhooks). The factory checks the
Basic password against the source's secret in constant time; the user name is not checked
(Azure requires one: use `codefactory`). The password travels in every request, so the
endpoint must be HTTPS (TLS terminated by the factory or its proxy): over plain HTTP anyone
on the path can read the secret and forge deliveries.

The body is the service hook event (learn.microsoft.com/azure/devops/service-hooks/events):
`id` is the event's id, the same on each retry of its notification, and names the delivery;
`eventType` names the event (`git.pullrequest.updated`, `git.pullrequest.merged`). Nothing
in the body is signed, so its `createdDate` cannot date the delivery: a replay is caught by
the event id and, under another id, by the body's digest, as for GitLab's token.

No event starts a run: votes and merges on `factory/<run-id>` branches are reconciled with
their run (review/forge_events.py, review/reconcile.py); everything else is ignored.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from codefactory.triggers.errors import DeliveryInvalid, SignatureInvalid
from codefactory.triggers.payload import json_object, text
from codefactory.triggers.port import Delivery, HeaderDoc, ParsedDelivery
from codefactory.triggers.settings import TriggerSettings

IGNORED = (
    "Azure DevOps events start no run (only `factory/` pull request votes and merges are read)"
)


def basic_password(delivery: Delivery) -> str | None:
    """The password of the delivery's `Authorization: Basic base64(user:password)` (RFC 7617);
    None when the header is missing or not Basic credentials."""
    scheme, _, credentials = delivery.header("Authorization").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        pair = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, colon, password = pair.partition(":")
    return password if colon else None


class AzureDevOpsServiceHooks:
    """Authenticates Azure DevOps Web Hooks deliveries; reads their event id and type."""

    name = "azure-devops"
    media_type = "application/json"
    headers = (
        HeaderDoc(
            name="Authorization",
            description="`Basic base64(<user>:<secret>)`: the subscription's basic "
            "authentication (HTTPS only)",
        ),
    )

    def __init__(self, settings: TriggerSettings | None = None) -> None:
        del settings

    def verify(self, delivery: Delivery, secret: str) -> None:
        password = basic_password(delivery)
        if password is None:
            raise SignatureInvalid(self.name, "", "no `Authorization: Basic` credentials")
        if not hmac.compare_digest(password.encode("utf-8"), secret.encode("utf-8")):
            raise SignatureInvalid(self.name, "", "the Basic password does not match")

    def read(self, delivery: Delivery) -> ParsedDelivery:
        doc = json_object(delivery)
        event_id = text(doc, "id", limit=128).strip()
        event = text(doc, "eventType", limit=128).strip()
        if not event_id or not event:
            raise DeliveryInvalid(self.name, event_id, "`id` or `eventType` is missing")
        return ParsedDelivery(delivery_id=event_id, event=event, ignored=IGNORED)
