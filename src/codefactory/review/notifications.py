"""Telling people a run waits for them: Slack (`chat.postMessage`) and e-mail (SMTP).

Who is told what, by the state a run enters (`ReviewNotifications`):

| state | told | `asked` |
| --- | --- | --- |
| `in_review` | the sponsor (`ready`); every `reviewer` who is no party to the change | `review` |
| `approved`, waiting for the CAB | the sponsor | `cab` |
| `in_qa` | every person holding `qa` who is no party to the change | `qa` |
| `in_uat` | every person holding `uat` who is no party to the change | `uat` |
| `accepted`, `rejected` | the sponsor, with the reason | `accepted`, `rejected` |

The parties to the change are the sponsor, the person who caused the trigger and the
trigger's actor (its requester); the desks refuse them anyway (segregation of duties), so
they are not asked. Each message is one audit event, `notification-sent` or
`notification-failed` (channel, person, error; never the message). A person without an
address on a channel is skipped on that channel; a channel that fails never fails the run.

A security alert (`SecurityAlerts`: a merge the factory did not approve) goes to every person
holding the `security` role on every configured channel, each message `alert-sent` or
`alert-failed`; an alert nobody could be sent is `alert-undelivered` with the reason.

Slack: a direct message from the factory's app (`channel` = the person's Slack user id, as
the directory's `slack` identity holds it), `Authorization: Bearer <bot token>`; Slack answers
200 with `{"ok": false, "error": ...}` for its own refusals. E-mail: one message per person
through the bank's relay (`smtplib`, STARTTLS when configured).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import httpx

from codefactory.audit import events
from codefactory.domain import AuditEvent, Run, RunState, TriggerEvent
from codefactory.identity.directory import Directory, IdentityKind, Person, Role
from codefactory.review.change_requests import CAB_WAIT
from codefactory.review.settings import EmailSettings, NotifySettings, SlackSettings
from codefactory.secret_files import SecretUnreadable, read_secret


class NotificationFailed(Exception):
    """A channel could not deliver a message (its answer or error says why)."""


@dataclass(frozen=True, kw_only=True)
class Notice:
    """What a person is told: which run, and what is asked of them."""

    run_id: str
    repository: str
    title: str
    asked: str
    """`review` (a reviewer), `ready` (the sponsor), `qa`, `uat` (a sign-off is asked),
    `cab` (the sponsor: approved, the CAB decides next), `accepted`, `rejected` (the
    sponsor: the end, with `reason`)."""
    reason: str = ""
    """The run's reason for its state (the CAB's or the signer's word), for the sponsor."""

    def text(self) -> str:
        what = ASKED.get(self.asked, "waits for you")
        because = f"\n{self.reason}" if self.reason and self.asked in TOLD_WHY else ""
        return (
            f"Code Factory run {self.run_id} on {self.repository} {what}: {self.title}{because}\n"
            f"Open it with `codefactory runs show {self.run_id}` or on the dashboard."
        )


ASKED = {
    "ready": "is ready for review by someone other than you",
    "review": "waits for your review",
    "qa": "waits for your QA sign-off",
    "uat": "waits for your UAT sign-off",
    "cab": "is approved and waits for the CAB's approval in ServiceNow",
    "accepted": "was accepted",
    "rejected": "was rejected",
}
"""What a notice says a run does, by what is asked."""
TOLD_WHY = ("cab", "accepted", "rejected")
"""Notices that carry the run's reason."""
SIGN_OFF_ROLES = {RunState.IN_QA: (Role.QA, "qa"), RunState.IN_UAT: (Role.UAT, "uat")}
SPONSOR_ENDS = {RunState.ACCEPTED: "accepted", RunState.REJECTED: "rejected"}


@dataclass(frozen=True, kw_only=True)
class Alert(Notice):
    """A security alert about a run: `title` names the audit event (`merge-unapproved`),
    `message` says what happened, in full."""

    message: str
    asked: str = "alert"

    def text(self) -> str:
        return (
            f"Code Factory security alert ({self.title}), run {self.run_id} on "
            f"{self.repository}: {self.message}\n"
            f"Explain it with `codefactory audit explain {self.run_id}`."
        )


class Channel(Protocol):
    """One way of reaching people."""

    name: str

    def address(self, person: Person) -> str | None:
        """Where `person` is reached on this channel, or None."""
        ...

    def send(self, address: str, notice: Notice) -> None:
        """Deliver `notice`; raises `NotificationFailed`."""
        ...


def _secret(path: Path | None, what: str) -> str:
    try:
        return read_secret(path, what)
    except SecretUnreadable as err:
        raise NotificationFailed(str(err)) from None


def slack_escaped(text: str) -> str:
    """`text` with `&`, `<` and `>` escaped as Slack's message formatting asks ("Escaping
    text"), so a ticket title's `<https://evil|Open it>` or `<!here>` is shown, not
    turned into a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(kw_only=True)
class SlackChannel:
    """Direct messages from the factory's Slack app (Web API `chat.postMessage`)."""

    settings: SlackSettings
    transport: httpx.BaseTransport | None = None
    name: str = "slack"

    def address(self, person: Person) -> str | None:
        ids = person.identities.get(IdentityKind.SLACK, ())
        return ids[0].upper() if ids else None  # Slack ids are upper case; the directory folds

    def send(self, address: str, notice: Notice) -> None:
        token = _secret(self.settings.token_file, "Slack bot token")
        body = {
            "channel": address,
            "text": slack_escaped(notice.text()),
            "unfurl_links": False,
            "unfurl_media": False,
        }
        try:
            with httpx.Client(
                timeout=self.settings.timeout_s,
                follow_redirects=False,
                trust_env=False,
                transport=self.transport,
            ) as client:
                response = client.post(
                    self.settings.base_url.rstrip("/") + "/chat.postMessage",
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                )
        except httpx.HTTPError as err:
            raise NotificationFailed(f"Slack could not be reached: {type(err).__name__}") from None
        if response.status_code == 429:
            wait = response.headers.get("retry-after", "?")
            raise NotificationFailed(f"Slack rate-limited the message (retry after {wait} s)")
        if response.status_code != 200:
            raise NotificationFailed(f"Slack answered {response.status_code}")
        try:
            answer: Any = response.json()
        except ValueError:
            raise NotificationFailed("Slack answered something that is not JSON") from None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            error = answer.get("error") if isinstance(answer, dict) else None
            raise NotificationFailed(f"Slack refused the message: {error or 'no reason given'}")


@dataclass(kw_only=True)
class EmailChannel:
    """One e-mail per person through the bank's SMTP relay."""

    settings: EmailSettings
    name: str = "email"

    def address(self, person: Person) -> str | None:
        return person.email or None

    def send(self, address: str, notice: Notice) -> None:
        settings = self.settings
        message = EmailMessage()
        message["From"] = settings.sender
        message["To"] = address
        message["Subject"] = f"[Code Factory] run {notice.run_id} {notice.asked}"
        message.set_content(notice.text())
        try:
            with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
                if settings.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if settings.user:
                    smtp.login(settings.user, _secret(settings.password_file, "SMTP password"))
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as err:
            raise NotificationFailed(f"the mail relay refused or failed: {err}") from None


def channels(settings: NotifySettings) -> list[Channel]:
    """The configured channels (none by default)."""
    found: list[Channel] = []
    if settings.slack.token_file is not None:
        found.append(SlackChannel(settings=settings.slack))
    if settings.email.host:
        found.append(EmailChannel(settings=settings.email))
    return found


Record = Callable[[AuditEvent], object]
"""Appends one audit event in a transaction of its own (`RunRepository.append`)."""
"""Appends an audit event: `record(name, actor=..., run_id=..., **data)`."""


@dataclass(kw_only=True)
class ReviewNotifications:
    """Tells people when a run waits for them, and the sponsor how it ended (a run
    observer): the table in this module's docstring."""

    channels: Sequence[Channel]
    directory: Directory
    run_of: Callable[[str], Run | None]
    trigger_of: Callable[[Run], TriggerEvent | None]
    record: Record

    def __call__(self, run_id: str, state: RunState, reason: str) -> None:
        if not self.channels or not _tells(state, reason):
            return
        run = self.run_of(run_id)
        if run is None:
            return
        trigger = self.trigger_of(run)
        title = trigger.title if trigger is not None else ""
        for person, asked in self.recipients(run, state, trigger):
            notice = Notice(run_id=run.id, repository=run.repository, title=title, asked=asked,
                            reason=reason)  # fmt: skip
            for channel in self.channels:
                self._send(channel, person, notice)

    def recipients(
        self, run: Run, state: RunState = RunState.IN_REVIEW, trigger: TriggerEvent | None = None
    ) -> list[tuple[Person, str]]:
        """Who is told that `run` entered `state`, and what each is asked: in review, the
        sponsor (`ready`) then each reviewer (`review`); in QA or UAT each holder of that
        role (`qa`, `uat`); approved, accepted or rejected, the sponsor alone. Reviewers and
        signers are never a party to the change (`parties`)."""
        sponsor = self.directory.person(run.sponsor)
        if state in SPONSOR_ENDS or state is RunState.APPROVED:
            asked = SPONSOR_ENDS.get(state, "cab")
            return [(sponsor, asked)] if sponsor is not None else []
        role, asked = SIGN_OFF_ROLES.get(state, (Role.REVIEWER, "review"))
        barred = parties(run, trigger)
        found = [(sponsor, "ready")] if sponsor is not None and role is Role.REVIEWER else []
        for person in self.directory.people():
            if person.has_role(role) and person.id not in barred:
                found.append((person, asked))
        return found

    def _send(self, channel: Channel, person: Person, notice: Notice) -> None:
        address = channel.address(person)
        if address is None:
            return
        to, asked = person.actor, notice.asked
        try:
            channel.send(address, notice)
        except NotificationFailed as err:
            self.record(
                events.NotificationFailed(
                    actor="factory", run_id=notice.run_id, error=str(err),
                    channel=channel.name, to=to, asked=asked,
                )
            )  # fmt: skip
            return
        self.record(
            events.NotificationSent(
                actor="factory", run_id=notice.run_id, channel=channel.name, to=to, asked=asked
            )
        )


def _tells(state: RunState, reason: str) -> bool:
    """Whether entering `state` (for `reason`) tells anyone: an approved run only while it
    waits for the CAB (otherwise it moves on at once, and the next state tells)."""
    if state is RunState.APPROVED:
        return CAB_WAIT in reason
    return state is RunState.IN_REVIEW or state in SIGN_OFF_ROLES or state in SPONSOR_ENDS


def parties(run: Run, trigger: TriggerEvent | None) -> set[str]:
    """The directory ids that are party to the change: the sponsor, who caused the trigger
    (`user:<id>`), the trigger's actor and its `requested_by` (the requester)."""
    found = {run.sponsor}
    if trigger is not None:
        found |= {
            trigger.caused_by.removeprefix("user:"),
            trigger.actor,
            str(trigger.attributes.get("requested_by", "")),
        }
    return found - {""}


@dataclass(kw_only=True)
class SecurityAlerts:
    """Sends an `Alert` to everyone holding the `security` role, on every channel."""

    channels: Sequence[Channel]
    directory: Directory
    record: Record

    def __call__(self, alert: Alert) -> int:
        """Send `alert`; returns how many messages went out (each audited)."""
        sent = 0
        people = [p for p in self.directory.people() if p.has_role(Role.SECURITY)]
        for person in people:
            for channel in self.channels:
                sent += self._send(channel, person, alert)
        if not sent:
            why = (
                "no channel is configured (notify.*)"
                if not self.channels
                else ("nobody holding the security role has an address on a configured channel")
            )
            self.record(
                events.AlertUndelivered(
                    actor="factory", run_id=alert.run_id, alert=alert.title, reason=why
                )
            )
        return sent

    def _send(self, channel: Channel, person: Person, alert: Alert) -> int:
        address = channel.address(person)
        if address is None:
            return 0
        to, title = person.actor, alert.title
        try:
            channel.send(address, alert)
        except NotificationFailed as err:
            self.record(
                events.AlertFailed(
                    actor="factory", run_id=alert.run_id, error=str(err),
                    channel=channel.name, to=to, alert=title,
                )
            )  # fmt: skip
            return 0
        self.record(
            events.AlertSent(
                actor="factory", run_id=alert.run_id, channel=channel.name, to=to, alert=title
            )
        )
        return 1
