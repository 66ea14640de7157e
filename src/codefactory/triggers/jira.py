"""Jira issues (REST API v2 or v3 `GET /rest/api/*/issue/{key}` shape) as triggers.

The kind of change comes from the ticket's labels; the text only steers the engine and never
widens authority (policy decides what the kind may do).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from codefactory.domain import ChangeKind, TriggerEvent
from codefactory.triggers.errors import TicketInvalid

# Label (lower case) → kind of change. The first label that matches decides.
LABEL_KINDS: Mapping[str, ChangeKind] = {
    "dependency": ChangeKind.BUMP_DEPENDENCY,
    "dependencies": ChangeKind.BUMP_DEPENDENCY,
    "security": ChangeKind.BUMP_DEPENDENCY,
    "vulnerability": ChangeKind.BUMP_DEPENDENCY,
    "lint": ChangeKind.FIX_LINT,
    "code-style": ChangeKind.FIX_LINT,
    "ci": ChangeKind.MODIFY_CI,
    "pipeline": ChangeKind.MODIFY_CI,
    "infrastructure": ChangeKind.MODIFY_INFRASTRUCTURE,
    "terraform": ChangeKind.MODIFY_INFRASTRUCTURE,
}


def kind_from_labels(labels: tuple[str, ...]) -> ChangeKind:
    """The change kind a ticket's labels ask for; `general_change` when none matches."""
    for label in labels:
        kind = LABEL_KINDS.get(label.lower())
        if kind is not None:
            return kind
    return ChangeKind.GENERAL_CHANGE


def adf_text(node: Any) -> str:
    """Plain text of an Atlassian Document Format node (REST v3 descriptions)."""
    if isinstance(node, str):
        return node
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    parts = [adf_text(child) for child in node.get("content", []) or []]
    separator = "\n" if node.get("type") in ("doc", "bulletList", "orderedList") else ""
    return separator.join(parts)


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
    """Parses a Jira issue document; the reporter is the human the run acts for."""

    name = "jira"

    def parse(self, payload: bytes, *, repository: str) -> TriggerEvent:
        try:
            document = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise TicketInvalid("jira", f"not valid JSON ({err})") from None
        fields = _fields(document)
        key = document.get("key")
        if not isinstance(key, str) or not key.strip():
            raise TicketInvalid("jira", "the ticket has no `key`")
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise TicketInvalid("jira", f"{key} has no `fields.summary`")
        reporter = _person(fields.get("reporter"))
        if not reporter:
            raise TicketInvalid("jira", f"{key} has no `fields.reporter` to act on behalf of")
        labels = _labels(fields)
        link = document.get("self")
        return TriggerEvent(
            source=self.name,
            kind=kind_from_labels(labels),
            external_id=key.strip(),
            actor=reporter,
            repository=repository,
            title=summary.strip(),
            body=adf_text(fields.get("description") or ""),
            labels=labels,
            links=(link,) if isinstance(link, str) else (),
            received_at=datetime.now(UTC),
            payload_digest="sha256:" + hashlib.sha256(payload).hexdigest(),
        )
