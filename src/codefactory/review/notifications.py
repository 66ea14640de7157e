"""Telling people a run waits for them: Slack (`chat.postMessage`) and e-mail (SMTP).

When a run rests in review, its sponsor is told it is ready and every reviewer the directory
knows (not the sponsor, not the person who caused the trigger) is told it waits for them.
Each message is one audit event, `notification-sent` or `notification-failed` (channel,
person, error; never the message). A person without an address on a channel is skipped on
that channel; a channel that fails never fails the run.

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

from codefactory.domain import Run, RunState, TriggerEvent
from codefactory.identity.directory import Directory, IdentityKind, Person, Role
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
    """`review` (a reviewer), `ready` (the sponsor)."""

    def text(self) -> str:
        if self.asked == "ready":
            what = "is ready for review by someone other than you"
        else:
            what = "waits for your review"
        return (
            f"Code Factory run {self.run_id} on {self.repository} {what}: {self.title}\n"
            f"Open it with `codefactory runs show {self.run_id}` or on the dashboard."
        )


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
        body = {"channel": address, "text": notice.text(), "unfurl_links": False}
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


Record = Callable[..., object]
"""Appends an audit event: `record(name, actor=..., run_id=..., **data)`."""


@dataclass(kw_only=True)
class ReviewNotifications:
    """Tells the sponsor and the reviewers when a run rests in review (a run observer)."""

    channels: Sequence[Channel]
    directory: Directory
    run_of: Callable[[str], Run | None]
    trigger_of: Callable[[Run], TriggerEvent | None]
    record: Record

    def __call__(self, run_id: str, state: RunState, reason: str) -> None:
        if state is not RunState.IN_REVIEW or not self.channels:
            return
        run = self.run_of(run_id)
        if run is None:
            return
        trigger = self.trigger_of(run)
        title = trigger.title if trigger is not None else ""
        caused_by = trigger.caused_by if trigger is not None else ""
        for person, asked in self.recipients(run, caused_by):
            notice = Notice(run_id=run.id, repository=run.repository, title=title, asked=asked)
            for channel in self.channels:
                self._send(channel, person, notice)

    def recipients(self, run: Run, caused_by: str = "") -> list[tuple[Person, str]]:
        """The sponsor (`ready`), then each reviewer who may approve the run (`review`): not
        the sponsor, not `caused_by` (`user:<id>` of who caused the trigger)."""
        barred = {run.sponsor, caused_by.removeprefix("user:")}
        found: list[tuple[Person, str]] = []
        sponsor = self.directory.person(run.sponsor)
        if sponsor is not None:
            found.append((sponsor, "ready"))
        for person in self.directory.people():
            if person.has_role(Role.REVIEWER) and person.id not in barred:
                found.append((person, "review"))
        return found

    def _send(self, channel: Channel, person: Person, notice: Notice) -> None:
        address = channel.address(person)
        if address is None:
            return
        common = {"channel": channel.name, "to": person.actor, "asked": notice.asked}
        try:
            channel.send(address, notice)
        except NotificationFailed as err:
            self.record(
                "notification-failed",
                actor="factory",
                run_id=notice.run_id,
                error=str(err),
                **common,
            )
            return
        self.record("notification-sent", actor="factory", run_id=notice.run_id, **common)


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
            self.record("alert-undelivered", actor="factory", run_id=alert.run_id,
                        alert=alert.title, reason=why)  # fmt: skip
        return sent

    def _send(self, channel: Channel, person: Person, alert: Alert) -> int:
        address = channel.address(person)
        if address is None:
            return 0
        common = {"channel": channel.name, "to": person.actor, "alert": alert.title}
        try:
            channel.send(address, alert)
        except NotificationFailed as err:
            self.record("alert-failed", actor="factory", run_id=alert.run_id, error=str(err),
                        **common)  # fmt: skip
            return 0
        self.record("alert-sent", actor="factory", run_id=alert.run_id, **common)
        return 1
