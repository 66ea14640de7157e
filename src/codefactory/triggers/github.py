"""GitHub webhooks: labeled issues, `/factory` comments, failed checks and workflow runs,
Dependabot alerts.

Signed as GitHub documents: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`;
`X-GitHub-Delivery` is the delivery's GUID (the same on a redelivery), `X-GitHub-Event` its
event. GitHub signs no timestamp, so a replay is caught by the delivery id and, under a new
delivery id, by the body's digest. The signed `sender.login` is who sent the event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codefactory.domain import ChangeKind, TriggerEvent
from codefactory.triggers.errors import DeliveryInvalid
from codefactory.triggers.labels import check_kind, command, command_kind, starts_work
from codefactory.triggers.payload import (
    delivered_object,
    items,
    label_names,
    mapping,
    required,
    text,
    trigger,
)
from codefactory.triggers.port import Delivery, HeaderDoc, ParsedDelivery
from codefactory.triggers.settings import TriggerSettings
from codefactory.triggers.signing import require_hex_hmac

FAILED = frozenset({"failure", "timed_out"})
REVIEW_EVENTS = frozenset({"pull_request", "pull_request_review"})
"""Review and merge events: matched to the factory's own requests (review/reconcile.py),
never a trigger."""
Reader = Callable[[Delivery, str, str, dict[str, Any]], "TriggerEvent | str"]


class GitHubWebhooks:
    """Reads the GitHub events that can ask for work; every other event is ignored.
    `pull_request_review` and merged `pull_request` events on `factory/<run-id>` branches
    are reconciled with their run (review/reconcile.py), never a trigger."""

    name = "github"
    media_type = "application/json"
    headers = (
        HeaderDoc(name="X-GitHub-Event", description="Event name, e.g. `issues`"),
        HeaderDoc(name="X-GitHub-Delivery", description="Delivery GUID"),
        HeaderDoc(name="X-Hub-Signature-256", description="`sha256=<hex HMAC-SHA256 of body>`"),
    )

    def __init__(self, settings: TriggerSettings | None = None) -> None:
        settings = settings or TriggerSettings()
        self.trigger_labels = tuple(settings.trigger_labels)
        self.prefix = settings.command
        self.readers: dict[str, Reader] = {
            "issues": self._issue,
            "issue_comment": self._comment,
            "check_run": self._check_run,
            "workflow_run": self._workflow_run,
            "dependabot_alert": self._dependabot_alert,
        }

    def verify(self, delivery: Delivery, secret: str) -> None:
        require_hex_hmac(
            delivery,
            header="X-Hub-Signature-256",
            secret=secret,
            message=delivery.body,
            prefix="sha256=",
            delivery_id=delivery.header("X-GitHub-Delivery"),
        )

    def read(self, delivery: Delivery) -> ParsedDelivery:
        delivery_id = delivery.header("X-GitHub-Delivery").strip()
        kind = delivery.header("X-GitHub-Event").strip()
        if not delivery_id or not kind:
            raise DeliveryInvalid(self.name, delivery_id, "X-GitHub-Delivery or -Event missing")
        doc = delivered_object(delivery, delivery_id)  # JSON, or the form's payload field
        action = text(doc, "action")
        event = f"{kind}.{action}" if action else kind
        reader = None if kind in REVIEW_EVENTS else self.readers.get(kind)
        if reader is None:
            ignored = f"GitHub `{kind}` events start no run"
            return ParsedDelivery(delivery_id=delivery_id, event=event, ignored=ignored)
        found = reader(delivery, delivery_id, event, doc)
        if isinstance(found, str):
            return ParsedDelivery(delivery_id=delivery_id, event=event, ignored=found)
        return ParsedDelivery(delivery_id=delivery_id, event=event, trigger=found)

    def _repository(self, delivery_id: str, doc: dict[str, Any]) -> str:
        return required(self.name, delivery_id, doc, "repository", "full_name")

    def _issue(
        self, delivery: Delivery, delivery_id: str, event: str, doc: dict[str, Any]
    ) -> TriggerEvent | str:
        if text(doc, "action") != "labeled":
            return "only `issues.labeled` starts a run"
        added = text(doc, "label", "name")
        if not starts_work(added, self.trigger_labels):
            return f"the label `{added}` asks for no work"
        labels = label_names(items(doc, "issue", "labels"))
        return self._issue_trigger(
            delivery, delivery_id, event, doc, command_kind("fix", (added, *labels)), ""
        )

    def _comment(
        self, delivery: Delivery, delivery_id: str, event: str, doc: dict[str, Any]
    ) -> TriggerEvent | str:
        if text(doc, "action") != "created":
            return "only new comments carry commands"
        if text(doc, "comment", "user", "type") == "Bot":
            return "comments by bots carry no commands"
        found = command(text(doc, "comment", "body"), self.prefix)
        if found is None:
            return f"the comment is no `{self.prefix}` command"
        labels = label_names(items(doc, "issue", "labels"))
        comment = text(doc, "comment", "body")
        kind = command_kind(found[0], labels)
        return self._issue_trigger(delivery, delivery_id, event, doc, kind, comment)

    def _issue_trigger(
        self,
        delivery: Delivery,
        delivery_id: str,
        event: str,
        doc: dict[str, Any],
        kind: ChangeKind,
        comment: str,
    ) -> TriggerEvent:
        repository = self._repository(delivery_id, doc)
        number = required(self.name, delivery_id, doc, "issue", "number")
        body = text(doc, "issue", "body")
        return trigger(
            delivery,
            delivery_id=delivery_id,
            event=event,
            kind=kind,
            external_id=f"{repository}#{number}",
            actor=required(self.name, delivery_id, doc, "sender", "login"),
            repository=repository,
            title=required(self.name, delivery_id, doc, "issue", "title"),
            body=f"{body}\n\n{comment}".strip(),
            labels=label_names(items(doc, "issue", "labels")),
            links=[text(doc, "comment", "html_url"), text(doc, "issue", "html_url")],
            attributes={"remote_repository": repository},
            sender_kind="github",
            sender=text(doc, "sender", "login"),
        )

    def _check_run(
        self, delivery: Delivery, delivery_id: str, event: str, doc: dict[str, Any]
    ) -> TriggerEvent | str:
        run = mapping(doc, "check_run")
        return self._failure(delivery, delivery_id, event, doc, run, "check_run")

    def _workflow_run(
        self, delivery: Delivery, delivery_id: str, event: str, doc: dict[str, Any]
    ) -> TriggerEvent | str:
        run = mapping(doc, "workflow_run")
        return self._failure(delivery, delivery_id, event, doc, run, "workflow_run")

    def _failure(
        self,
        delivery: Delivery,
        delivery_id: str,
        event: str,
        doc: dict[str, Any],
        run: dict[str, Any],
        what: str,
    ) -> TriggerEvent | str:
        conclusion = text(run, "conclusion")
        if text(doc, "action") != "completed" or conclusion not in FAILED:
            return f"only a {what} completed with failure starts a run (this one: {conclusion})"
        repository = self._repository(delivery_id, doc)
        name = text(run, "name") or text(doc, "workflow", "name") or what
        sha = text(run, "head_sha")
        output = "\n".join(filter(None, (text(run, "output", k) for k in ("title", "summary"))))
        return trigger(
            delivery,
            delivery_id=delivery_id,
            event=event,
            kind=check_kind(name),
            external_id=f"{repository}@{what}/{required(self.name, delivery_id, run, 'id')}",
            actor=text(doc, "sender", "login") or "github",
            repository=repository,
            title=f"`{name}` failed on {sha[:12] or 'a commit'}",
            body=output or f"The {what} `{name}` concluded `{conclusion}`.",
            links=[text(run, "html_url"), text(run, "details_url")],
            autonomous=True,
            attributes={"remote_repository": repository, "head_sha": sha, "check": name},
            sender_kind="github",
            sender=text(doc, "sender", "login"),
        )

    def _dependabot_alert(
        self, delivery: Delivery, delivery_id: str, event: str, doc: dict[str, Any]
    ) -> TriggerEvent | str:
        if text(doc, "action") not in ("created", "reopened", "reintroduced"):
            return "only a new or reopened Dependabot alert starts a run"
        repository = self._repository(delivery_id, doc)
        alert = mapping(doc, "alert")
        package = required(self.name, delivery_id, alert, "dependency", "package", "name")
        advisory = mapping(alert, "security_advisory")
        ghsa = text(advisory, "ghsa_id")
        fixed = text(alert, "security_vulnerability", "first_patched_version", "identifier")
        number = required(self.name, delivery_id, alert, "number")
        return trigger(
            delivery,
            delivery_id=delivery_id,
            event=event,
            kind=ChangeKind.BUMP_DEPENDENCY,
            external_id=f"{repository}#dependabot-{number}",
            actor=text(doc, "sender", "login") or "dependabot",
            repository=repository,
            title=f"Upgrade {package}: {ghsa} ({text(advisory, 'summary')})",
            body=f"{text(advisory, 'description')}\n\nFirst patched version: {fixed or '?'}",
            labels=("security", "dependencies"),
            links=[text(alert, "html_url")],
            autonomous=True,
            attributes={
                "remote_repository": repository,
                "package": package,
                "ecosystem": text(alert, "dependency", "package", "ecosystem"),
                "manifest_path": text(alert, "dependency", "manifest_path"),
                "severity": text(advisory, "severity"),
                "advisory": ghsa,
            },
            sender_kind="github",
            sender=text(doc, "sender", "login"),
        )
