"""Sentry integration-platform webhooks: issue alerts (`event_alert`), errors, new issues.

Sentry signs with the integration's client secret: `Sentry-Hook-Signature` is the hex
HMAC-SHA256 of the body; `Sentry-Hook-Resource` names the resource and `Request-ID` the
delivery. `Sentry-Hook-Timestamp` is not covered by the signature, so it dates nothing: a
replayed body is caught by its digest, never let through by a fresh unsigned timestamp.
Alerts are autonomous (no human sender). Sentry's payloads carry no suspect
commits; when a relay attaches them in the shape of Sentry's committers API
(`committers: [{author, commits: [{id, message}]}]`) beside the event, they are carried into
the task text and the `suspect_commits` attribute.
"""

from __future__ import annotations

import re
from typing import Any

from codefactory.domain import ChangeKind, TriggerEvent
from codefactory.triggers.errors import DeliveryInvalid
from codefactory.triggers.payload import items, json_object, mapping, text, trigger
from codefactory.triggers.port import Delivery, HeaderDoc, ParsedDelivery
from codefactory.triggers.settings import TriggerSettings
from codefactory.triggers.signing import require_hex_hmac

PROJECT_IN_URL = re.compile(r"/projects/[^/]+/([^/]+)/")
# resource → (action that asks for work, key of the object under `data`)
RESOURCES = {"event_alert": ("triggered", "event"), "error": ("created", "error")}


class SentryWebhooks:
    """Reads Sentry issue alerts, errors and new issues; the project slug names the repository."""

    name = "sentry"
    media_type = "application/json"
    headers = (
        HeaderDoc(name="Sentry-Hook-Resource", description="`event_alert`, `error`, `issue`, …"),
        HeaderDoc(name="Sentry-Hook-Signature", description="Hex HMAC-SHA256 of the body"),
        HeaderDoc(
            name="Sentry-Hook-Timestamp",
            description="Seconds since the epoch; unsigned, so not used",
            required=False,
        ),
        HeaderDoc(name="Request-ID", description="Delivery id"),
    )

    def __init__(self, settings: TriggerSettings | None = None) -> None:
        del settings

    def verify(self, delivery: Delivery, secret: str) -> None:
        require_hex_hmac(
            delivery,
            header="Sentry-Hook-Signature",
            secret=secret,
            message=delivery.body,
            delivery_id=delivery.header("Request-ID"),
        )

    def read(self, delivery: Delivery) -> ParsedDelivery:
        delivery_id = delivery.header("Request-ID").strip()
        resource = delivery.header("Sentry-Hook-Resource").strip()
        if not delivery_id or not resource:
            raise DeliveryInvalid(
                self.name, delivery_id, "Request-ID or Sentry-Hook-Resource missing"
            )
        doc = json_object(delivery, delivery_id)
        action = text(doc, "action", limit=64)
        event = f"{resource}.{action}"
        found = self._trigger(delivery, delivery_id, event, resource, action, doc)
        if isinstance(found, str):
            return ParsedDelivery(delivery_id=delivery_id, event=event, ignored=found)
        return ParsedDelivery(delivery_id=delivery_id, event=event, trigger=found)

    def _trigger(
        self,
        delivery: Delivery,
        delivery_id: str,
        event: str,
        resource: str,
        action: str,
        doc: dict[str, Any],
    ) -> TriggerEvent | str:
        if resource == "issue" and action == "created":
            issue = mapping(doc, "data", "issue")
            project = text(issue, "project", "slug")
            issue_id = text(issue, "id")
            details = {"level": text(issue, "level"), "culprit": text(issue, "culprit")}
            links = [text(issue, "web_url"), text(issue, "permalink")]
            body = text(issue, "culprit")
            title = text(issue, "title")
        elif resource in RESOURCES and RESOURCES[resource][0] == action:
            found = mapping(doc, "data", RESOURCES[resource][1])
            match = PROJECT_IN_URL.search(text(found, "url"))
            project = match.group(1) if match else text(found, "project")
            issue_id = text(found, "issue_id")
            details = {"level": text(found, "level"), "release": text(found, "release")}
            links = [text(found, "web_url"), text(found, "issue_url")]
            body = _event_text(found, text(doc, "data", "triggered_rule"))
            title = text(found, "title") or text(found, "message")
        else:
            return f"Sentry `{event}` deliveries start no run"
        if not project or not title:
            raise DeliveryInvalid(self.name, delivery_id, "the project or title is missing")
        suspects = _suspect_commits(mapping(doc, "data"))
        return trigger(
            delivery,
            delivery_id=delivery_id,
            event=event,
            kind=ChangeKind.GENERAL_CHANGE,
            external_id=f"sentry:{project}:{issue_id or delivery_id}",
            actor=text(doc, "actor", "name") or "Sentry",
            repository=project,
            title=title,
            body="\n".join(filter(None, (body, *(f"suspect commit {s}" for s in suspects)))),
            links=links,
            autonomous=True,
            attributes={**details, "project": project, "suspect_commits": " ".join(suspects)},
        )


def _event_text(event: dict[str, Any], rule: str) -> str:
    """The alert rule, the culprit and the top in-app frames of each exception."""
    lines = [f"alert rule: {rule}" if rule else "", text(event, "culprit")]
    for exception in items(event, "exception", "values")[:3]:
        lines.append(f"{text(exception, 'type')}: {text(exception, 'value')}")
        for frame in items(exception, "stacktrace", "frames")[-5:]:
            where = f"{text(frame, 'filename')}:{text(frame, 'lineno')}"
            lines.append(f"  at {where} {text(frame, 'function')}".rstrip())
    return "\n".join(line for line in lines if line)


def _suspect_commits(data: dict[str, Any]) -> list[str]:
    """`<sha> <first line>` of each suspect commit a relay attached (committers API shape)."""
    found: list[str] = []
    for committer in items(data, "committers")[:5]:
        for commit in items(committer, "commits")[:5]:
            sha = text(commit, "id", limit=40)
            lines = text(commit, "message").splitlines()
            if sha:
                found.append(f"{sha} {lines[0] if lines else ''}".strip())
    return found
