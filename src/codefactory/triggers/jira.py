"""Jira issues (REST API v2 or v3 `GET /rest/api/*/issue/{key}` shape) as triggers.

The kind of change comes from the ticket's labels; the text only steers the engine and never
widens authority (policy decides what the kind may do).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from codefactory.domain import TriggerEvent
from codefactory.triggers.errors import DeliveryInvalid, TicketInvalid
from codefactory.triggers.labels import LABEL_KINDS, kind_from_labels
from codefactory.triggers.payload import (
    MAX_ID,
    JsonTooDeep,
    clean,
    epoch,
    items,
    json_object,
    label_names,
    loads,
    mapping,
    required,
    text,
    trigger,
)
from codefactory.triggers.port import Delivery, HeaderDoc, ParsedDelivery
from codefactory.triggers.settings import TriggerSettings
from codefactory.triggers.signing import require_hex_hmac
from codefactory.triggers.text import TextRefused, check_line, shown

__all__ = ["LABEL_KINDS", "JiraTicketSource", "JiraWebhooks", "adf_text", "kind_from_labels"]


_ADF_BLOCKS = frozenset(
    {
        "doc", "paragraph", "heading", "bulletList", "orderedList", "listItem", "codeBlock",
        "blockquote", "panel", "table", "tableRow", "tableCell", "tableHeader", "expand",
        "nestedExpand", "taskList", "taskItem", "decisionList", "decisionItem", "mediaSingle",
        "mediaGroup", "layoutSection", "layoutColumn",
    }
)  # fmt: skip
"""Nodes whose children stand on lines of their own; inline nodes' children run together."""


def adf_text(node: Any) -> str:
    """Plain text of an Atlassian Document Format node (Jira REST v3 descriptions and
    comments): text as written, a hard break as a newline, a mention as the person's display
    name, an inline, block or embed card as its URL, an emoji as its text, a status lozenge
    as its label, a date as YYYY-MM-DD, code blocks and list items each on their own lines."""
    if isinstance(node, str):
        return node
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    found = node.get("attrs")
    attrs: dict[str, Any] = found if isinstance(found, dict) else {}
    if kind == "text":
        return str(node.get("text", ""))
    if kind == "hardBreak":
        return "\n"
    if kind == "mention":
        return str(attrs.get("text") or attrs.get("id") or "").removeprefix("@")
    if kind in ("inlineCard", "blockCard", "embedCard"):
        card = attrs.get("data")
        data: dict[str, Any] = card if isinstance(card, dict) else {}
        return str(attrs.get("url") or data.get("url") or "")
    if kind == "emoji":
        return str(attrs.get("text") or attrs.get("shortName") or "")
    if kind == "status":
        return str(attrs.get("text") or "")
    if kind == "date":
        return _adf_date(attrs.get("timestamp"))
    if kind == "rule":
        return "---"
    parts = [adf_text(child) for child in node.get("content", []) or []]
    if kind == "listItem":
        return "- " + "\n".join(part for part in parts if part)
    if kind in _ADF_BLOCKS and kind not in ("paragraph", "heading", "codeBlock"):
        return "\n".join(part for part in parts if part)
    return "".join(parts)


def _adf_date(timestamp: Any) -> str:
    try:
        moment = datetime.fromtimestamp(int(str(timestamp)) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return moment.date().isoformat()


def _person(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    for key in ("name", "emailAddress", "accountId", "displayName"):
        found = value.get(key)
        if isinstance(found, str) and found.strip():
            return found.strip()
    return ""


def _fields(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise TicketInvalid("jira", "the ticket must be a JSON object")
    fields = document.get("fields")
    if not isinstance(fields, dict):
        raise TicketInvalid("jira", "the ticket has no `fields` object")
    return fields


def _labels(fields: dict[str, Any]) -> tuple[str, ...]:
    labels = fields.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise TicketInvalid("jira", "`fields.labels` must be a list of strings")
    return tuple(labels)


class JiraTicketSource:
    """Parses a Jira issue document. Who the run acts for is not the ticket's to say: the
    reporter is kept only as the untrusted `reporter` attribute, and intake sets the sender
    (the logged-in caller). A key, summary or label with a control, format or zero-width
    character is refused (`TicketInvalid`), as is JSON nested deeper than `MAX_JSON_DEPTH`."""

    name = "jira"

    def parse(self, payload: bytes, *, repository: str) -> TriggerEvent:
        try:
            document = loads(payload)
        except JsonTooDeep as err:
            raise TicketInvalid("jira", f"the ticket's JSON is {err}") from None
        except (UnicodeDecodeError, ValueError) as err:
            raise TicketInvalid("jira", f"not valid JSON ({err})") from None
        fields = _fields(document)
        key = document.get("key") if isinstance(document, dict) else None
        if not isinstance(key, str) or not key.strip():
            raise TicketInvalid("jira", "the ticket has no `key`")
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise TicketInvalid("jira", f"{shown(key)} has no `fields.summary`")
        labels = _labels(fields)
        try:
            check_line(key, what="the ticket key")
            check_line(summary, what="the summary")
            for index, label in enumerate(labels):
                check_line(label, what=f"label {index}")
        except TextRefused as err:
            raise TicketInvalid("jira", str(err)) from None
        reporter = clean(_person(fields.get("reporter")), MAX_ID)
        attributes = {"reporter": reporter} if reporter else {}
        link = document.get("self") if isinstance(document, dict) else None
        status = fields.get("status")
        status_name = status.get("name") if isinstance(status, dict) else None
        if isinstance(status_name, str):
            attributes["status"] = clean(status_name, 1000)
        return TriggerEvent(
            source=self.name,
            kind=kind_from_labels(labels),
            external_id=key.strip(),
            actor="(cli)",
            repository=repository,
            title=summary.strip(),
            body=adf_text(fields.get("description") or ""),
            labels=labels,
            links=(link,) if isinstance(link, str) else (),
            received_at=datetime.now(UTC),
            payload_digest="sha256:" + hashlib.sha256(payload).hexdigest(),
            attributes=attributes,
        )


class JiraWebhooks:
    """Jira Cloud admin webhooks: `jira:issue_updated` moving an issue into a ready status.

    Signed with the webhook's secret: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`
    (WebSub); `X-Atlassian-Webhook-Identifier` names the delivery across retries; the body's
    `timestamp` (ms) dates it. The sender is the user who caused the event (`user.accountId`,
    or `user.name` on Data Center), never the issue's reporter.
    """

    name = "jira"
    media_type = "application/json"
    headers = (
        HeaderDoc(name="X-Hub-Signature", description="`sha256=<hex HMAC-SHA256 of the body>`"),
        HeaderDoc(
            name="X-Atlassian-Webhook-Identifier",
            description="Delivery id, unchanged across retries",
        ),
    )

    def __init__(self, settings: TriggerSettings | None = None) -> None:
        self.ready = {s.lower() for s in (settings or TriggerSettings()).ready_statuses}

    def verify(self, delivery: Delivery, secret: str) -> None:
        delivery_id = delivery.header("X-Atlassian-Webhook-Identifier")
        require_hex_hmac(
            delivery,
            header="X-Hub-Signature",
            secret=secret,
            message=delivery.body,
            prefix="sha256=",
            delivery_id=delivery_id,
        )

    def read(self, delivery: Delivery) -> ParsedDelivery:
        delivery_id = delivery.header("X-Atlassian-Webhook-Identifier").strip()
        if not delivery_id:
            raise DeliveryInvalid(self.name, "", "the X-Atlassian-Webhook-Identifier is missing")
        doc = json_object(delivery, delivery_id)
        event = text(doc, "webhookEvent", limit=128)
        sent_at = epoch(text(doc, "timestamp"))
        if event != "jira:issue_updated":
            return ParsedDelivery(
                delivery_id=delivery_id,
                event=event,
                sent_at=sent_at,
                ignored=f"`{event}` is not an issue update",
            )
        status = self._new_status(doc)
        if not status:
            ignored = f"the issue did not move into {' or '.join(sorted(self.ready))}"
            return ParsedDelivery(
                delivery_id=delivery_id, event=event, sent_at=sent_at, ignored=ignored
            )
        found = self._trigger(delivery, delivery_id, event, doc, status)
        return ParsedDelivery(delivery_id=delivery_id, event=event, sent_at=sent_at, trigger=found)

    def _new_status(self, doc: dict[str, Any]) -> str:
        for item in items(doc, "changelog", "items"):
            if text(item, "field").lower() == "status":
                moved_to = text(item, "toString")
                if moved_to.lower() in self.ready:
                    return moved_to
        return ""

    def _trigger(
        self, delivery: Delivery, delivery_id: str, event: str, doc: dict[str, Any], status: str
    ) -> TriggerEvent:
        key = required(self.name, delivery_id, doc, "issue", "key")
        fields = mapping(doc, "issue", "fields")
        labels = label_names(items(fields, "labels"))
        return trigger(
            delivery,
            delivery_id=delivery_id,
            event=event,
            kind=kind_from_labels(labels),
            external_id=key,
            actor=_person(doc.get("user")) or "(unknown)",
            repository=required(self.name, delivery_id, fields, "project", "key"),
            title=required(self.name, delivery_id, fields, "summary"),
            body=clean(adf_text(fields.get("description") or "")),
            labels=labels,
            links=[text(doc, "issue", "self")],
            attributes={
                "status": status,
                "issue_type": text(fields, "issuetype", "name"),
                "priority": text(fields, "priority", "name"),
            },
            sender_kind="jira",
            sender=text(doc, "user", "accountId") or text(doc, "user", "name"),
        )
