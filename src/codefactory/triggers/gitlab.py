"""GitLab webhooks: issue hooks (a work label added) and note hooks (`/factory` comments).

GitLab sends the webhook's secret token itself in `X-Gitlab-Token` (no HMAC), the event in
`X-Gitlab-Event` (`Issue Hook`, `Note Hook`) and `Idempotency-Key` (GitLab 17.4+, the same
across retries) or else `X-Gitlab-Event-UUID` naming the delivery. No timestamp is signed.
"""

from __future__ import annotations

from typing import Any

from codefactory.domain import ChangeKind, TriggerEvent
from codefactory.triggers.errors import DeliveryInvalid
from codefactory.triggers.labels import command, command_kind, starts_work
from codefactory.triggers.payload import (
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
from codefactory.triggers.signing import require_token

NOTEABLE = {"Issue": ("issue", "#"), "MergeRequest": ("merge_request", "!")}


class GitLabWebhooks:
    """Reads GitLab issue and note hooks; every other hook is ignored. Merge request hooks
    (`approved`, `merge`) on `factory/<run-id>` branches are reconciled with their run
    (review/reconcile.py), never a trigger."""

    name = "gitlab"
    media_type = "application/json"
    headers = (
        HeaderDoc(name="X-Gitlab-Token", description="The webhook's secret token"),
        HeaderDoc(name="X-Gitlab-Event", description="Hook name, e.g. `Issue Hook`"),
        HeaderDoc(
            name="Idempotency-Key",
            description="Delivery id, the same across retries (else X-Gitlab-Event-UUID)",
            required=False,
        ),
        HeaderDoc(name="X-Gitlab-Event-UUID", description="Event id", required=False),
    )

    def __init__(self, settings: TriggerSettings | None = None) -> None:
        settings = settings or TriggerSettings()
        self.trigger_labels = tuple(settings.trigger_labels)
        self.prefix = settings.command

    @staticmethod
    def _delivery_id(delivery: Delivery) -> str:
        return (
            delivery.header("Idempotency-Key") or delivery.header("X-Gitlab-Event-UUID")
        ).strip()

    def verify(self, delivery: Delivery, secret: str) -> None:
        delivery_id = self._delivery_id(delivery)
        require_token(delivery, header="X-Gitlab-Token", secret=secret, delivery_id=delivery_id)

    def read(self, delivery: Delivery) -> ParsedDelivery:
        delivery_id = self._delivery_id(delivery)
        if not delivery_id:
            raise DeliveryInvalid(self.name, "", "no Idempotency-Key or X-Gitlab-Event-UUID")
        doc = json_object(delivery, delivery_id)
        kind = text(doc, "object_kind", limit=64)
        action = text(doc, "object_attributes", "action", limit=32)
        event = f"{kind}.{action}" if action else kind or delivery.header("X-Gitlab-Event")
        if kind == "issue":
            found = self._issue(delivery, delivery_id, event, doc)
        elif kind == "note":
            found = self._note(delivery, delivery_id, event, doc)
        else:
            found = f"GitLab `{kind or 'unknown'}` hooks start no run"
        if isinstance(found, str):
            return ParsedDelivery(delivery_id=delivery_id, event=event, ignored=found)
        return ParsedDelivery(delivery_id=delivery_id, event=event, trigger=found)

    def _issue(
        self, delivery: Delivery, delivery_id: str, event: str, doc: dict[str, Any]
    ) -> TriggerEvent | str:
        attributes = mapping(doc, "object_attributes")
        labels = label_names(items(attributes, "labels") or items(doc, "labels"), "title")
        previous = set(label_names(items(doc, "changes", "labels", "previous"), "title"))
        if text(attributes, "action") == "open":
            previous = set()
        elif "labels" not in mapping(doc, "changes"):
            return "only an issue opened or relabelled with a work label starts a run"
        added = [label for label in labels if label not in previous]
        if not any(starts_work(label, self.trigger_labels) for label in added):
            return "no label that asks for work was added"
        kind = command_kind("fix", (*added, *labels))
        return self._trigger(delivery, delivery_id, event, doc, attributes, "#", kind, labels)

    def _note(
        self, delivery: Delivery, delivery_id: str, event: str, doc: dict[str, Any]
    ) -> TriggerEvent | str:
        note = mapping(doc, "object_attributes")
        if text(note, "action") not in ("", "create"):
            return "only new comments carry commands"
        target = NOTEABLE.get(text(note, "noteable_type"))
        if target is None:
            return "only comments on issues and merge requests carry commands"
        found = command(text(note, "note"), self.prefix)
        if found is None:
            return f"the comment is no `{self.prefix}` command"
        subject = mapping(doc, target[0])
        labels = label_names(items(subject, "labels"), "title")
        kind = command_kind(found[0], labels)
        return self._trigger(delivery, delivery_id, event, doc, subject, target[1], kind, labels)

    def _trigger(
        self,
        delivery: Delivery,
        delivery_id: str,
        event: str,
        doc: dict[str, Any],
        subject: dict[str, Any],
        sigil: str,
        kind: ChangeKind,
        labels: tuple[str, ...],
    ) -> TriggerEvent:
        repository = required(self.name, delivery_id, doc, "project", "path_with_namespace")
        iid = required(self.name, delivery_id, subject, "iid")
        comment = text(doc, "object_attributes", "note") if sigil == "!" or "note" in event else ""
        return trigger(
            delivery,
            delivery_id=delivery_id,
            event=event,
            kind=kind,
            external_id=f"{repository}{sigil}{iid}",
            actor=required(self.name, delivery_id, doc, "user", "username"),
            repository=repository,
            title=required(self.name, delivery_id, subject, "title"),
            body=f"{text(subject, 'description')}\n\n{comment}".strip(),
            labels=labels,
            links=[text(doc, "object_attributes", "url"), text(subject, "url")],
            attributes={"remote_repository": repository},
            sender_kind="gitlab",
            sender=text(doc, "user", "username"),
        )
