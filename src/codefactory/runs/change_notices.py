"""A ServiceNow business rule's notice that a change request's `approval` changed, as the
webhook intake takes it (`POST /webhooks/servicenow-change`, `WebhookIntake.receive_change_notice`).

The notice is `{"number", "sys_id", "approval", "sys_mod_count", "sent_at"}` with the shared
secret of the ServiceNow source (`triggers.secrets.servicenow`, the same password2 property
incident deliveries carry) in `X-Codefactory-Token`. It only prompts the review desk
(`ReviewDesk.cab_approval_delivered`) to read the Table API again: the notice's `approval` is
recorded, never believed. Its delivery id is `<sys_id>:<sys_mod_count>` (each update of a
record bumps `sys_mod_count`, so a change approved, re-requested and approved again sends
three notices), or the body's SHA-256 when the body has no such pair; `sent_at` (GlideDateTime
numeric value, ms) is held to the replay window when present.

What the route answers (the desk audits each authenticated refusal as
`cab-approval-delivery-refused`): 202 with the run and its state (`in_qa`, `handed_off`,
`rejected`, or still `approved` with the reason it waits); 404 (`NoticeRefused`) for a
well-formed notice about a change no approved run waits on; 422 for an authenticated body that
is not such a notice; 429 once a client has had `triggers.rejections_per_minute` such refusals
this minute (`NoticeRefusals`: counted into one `cab-approval-delivery-refusals` event per client
and minute instead). A notice naming a change an approved run waits on is never refused by the
budget, and is read again even when its id repeats: the id is predictable, so a forged notice
sent first must not take the genuine one's place (a refusal or a wait is never final).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from codefactory.audit.events import CabApprovalDeliveryRefusals
from codefactory.domain import Run
from codefactory.review.change_requests import (
    TOKEN_HEADER,
    ApprovalDeliveryInvalid,
    read_approval_delivery,
)
from codefactory.review.errors import ReviewError
from codefactory.runs.hand_off import run_waiting_on
from codefactory.store.port import RunRepository
from codefactory.triggers.errors import DeliveryStale, SignatureInvalid
from codefactory.triggers.payload import epoch
from codefactory.triggers.port import Delivery
from codefactory.triggers.rejections import RejectionBudget, capped
from codefactory.triggers.signing import require_token
from codefactory.triggers.tally import Clock, MinuteTally, minute_start

NOTICE_SOURCE = "servicenow-change"
"""The route's name (`/webhooks/servicenow-change`), the tally's source and the queue's."""
SECRET_SOURCE = "servicenow"
"""Whose secret authenticates a notice: the ServiceNow source's (`triggers.secrets`)."""
NOTICE_EVENT = "change_request.approval"
NOT_WAITING = 404
MALFORMED = 422
REFUSALS_EVENT = CabApprovalDeliveryRefusals.NAME
"""One per client and minute: the authenticated notices answered 429 past the budget."""

_SYS_ID = re.compile(r"[0-9a-f]{32}")


class CabApprovals(Protocol):
    """What takes a notice: the review desk (`ReviewDesk.cab_approval_delivered`)."""

    def cab_approval_delivered(self, delivery: Delivery, secret: str) -> Run: ...


class NoticeRefused(Exception):
    """An authenticated notice the desk refused: `status` 404 (no approved run waits on the
    change) or 422 (not a notice), `reason` the desk's."""

    def __init__(self, delivery_id: str, status: int, reason: str, *, duplicate: bool = False):
        again = " (a repeat, answered as the first)" if duplicate else ""
        super().__init__(f"change approval notice {delivery_id} refused{again}: {reason}")
        self.delivery_id = delivery_id
        self.status = status
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class NoticeOutcome:
    """What became of a notice: the run it moved or left waiting (`run_id`, `state`,
    `reason`), or a refusal (`refused` with the HTTP `status`)."""

    status: int
    run_id: str | None
    state: str | None
    reason: str

    @property
    def refused(self) -> bool:
        return self.status != 202


def authenticate(delivery: Delivery, secret: str) -> None:
    """`SignatureInvalid` unless the delivery carries `secret` (constant time)."""
    if not secret:
        reason = "no webhook secret is configured (triggers.secrets.servicenow)"
        raise SignatureInvalid(delivery.source, "", reason)
    require_token(delivery, header=TOKEN_HEADER, secret=secret)


def notice_id(delivery: Delivery) -> str:
    """`<sys_id>:<sys_mod_count>` when the body names both, else its SHA-256 digest."""
    try:
        document = json.loads(delivery.body)
    except (UnicodeDecodeError, ValueError):
        return delivery.digest
    if not isinstance(document, dict):
        return delivery.digest
    sys_id, count = document.get("sys_id"), document.get("sys_mod_count")
    if isinstance(count, int) and not isinstance(count, bool):
        count = str(count)
    if isinstance(sys_id, str) and _SYS_ID.fullmatch(sys_id) and isinstance(count, str):
        if count.isdigit() and len(count) < 12:
            return f"{sys_id}:{count}"
    return delivery.digest


def change_of(delivery_id: str) -> str:
    """The change a notice id names (its `sys_id`), or the id itself when it is a digest."""
    sys_id, sep, _ = delivery_id.partition(":")
    return sys_id if sep and _SYS_ID.fullmatch(sys_id) else delivery_id


def check_fresh(delivery: Delivery, delivery_id: str, window_s: float) -> None:
    """`DeliveryStale` when the body's `sent_at` is further than `window_s` from receipt."""
    try:
        document = json.loads(delivery.body)
    except (UnicodeDecodeError, ValueError):
        return
    sent = document.get("sent_at") if isinstance(document, dict) else None
    sent_at = epoch(str(sent)) if isinstance(sent, str | int) else None
    if sent_at is None:
        return
    skew = (delivery.received_at - sent_at).total_seconds()
    if abs(skew) > window_s:
        raise DeliveryStale(delivery.source, delivery_id, skew, window_s)


def refusal_status(delivery: Delivery, secret: str) -> int:
    """404 for a well-formed notice (its change has no waiting run), 422 for a body that
    is no notice (`read_approval_delivery` refuses it)."""
    try:
        read_approval_delivery(delivery, secret)
    except ApprovalDeliveryInvalid:
        return MALFORMED
    return NOT_WAITING


def waiting_run_id(delivery: Delivery, secret: str, store: RunRepository) -> str | None:
    """The id of the `approved` run waiting on the change the authenticated notice names
    (`hand_off.run_waiting_on`, no Table API call), None for a body that is no notice or a
    change no run waits on."""
    try:
        notice = read_approval_delivery(delivery, secret)
    except ApprovalDeliveryInvalid:
        return None
    run = run_waiting_on(store, notice.sys_id)
    return run.id if run is not None else None


@dataclass(kw_only=True)
class ThrottledNotices:
    """A client's authenticated notices answered 429 in one minute (refusals past the
    budget, each unaudited on its own)."""

    source: str
    client: str
    minute: int
    count: int = 0
    first_delivery_id: str = ""

    def audit_data(self, limit: int) -> dict[str, Any]:
        """The fields of the `cab-approval-delivery-refusals` event."""
        return {
            "source": self.source,
            "client": capped(self.client, limit),
            "count": self.count,
            "minute": minute_start(self.minute),
            "first_delivery_id": capped(self.first_delivery_id, limit),
        }


@dataclass(kw_only=True)
class NoticeRefusals:
    """Authenticated notices refused (404, 422) per client address and minute; thread-safe.

    The first `per_minute` refusals of a client in a minute are answered with their own error
    and audited in full by the desk (`cab-approval-delivery-refused`); past them a notice that
    would be refused is answered 429 (`RateLimited`) before the desk sees it, and only
    counted: one `cab-approval-delivery-refusals` event per client and minute (`publish`,
    called when the minute is over and at shutdown). A notice naming a change an approved run
    waits on is never refused by the budget. The budget and tally are the intake's
    (`triggers.rejections.RejectionBudget`, `triggers.tally.MinuteTally`)."""

    per_minute: int
    publish: Callable[[list[ThrottledNotices]], None]
    clock: Clock = time.time
    budget: RejectionBudget = field(init=False)
    tally: MinuteTally[str, ThrottledNotices] = field(init=False)

    def __post_init__(self) -> None:
        self.budget = RejectionBudget(self.per_minute, clock=self.clock)
        self.tally = MinuteTally(self.publish, clock=self.clock)

    def exhausted(self, client: str) -> bool:
        """Whether `client` has had `per_minute` refused notices this minute."""
        return self.budget.exhausted(NOTICE_SOURCE, client)

    def refused(self, client: str) -> None:
        """One of `client`'s notices was refused (and audited in full by the desk)."""
        self.budget.spend(NOTICE_SOURCE, client)

    def throttled(self, client: str, delivery_id: str) -> None:
        """One of `client`'s notices was answered 429: counted, not audited on its own."""

        def new(minute: int) -> ThrottledNotices:
            return ThrottledNotices(source=NOTICE_SOURCE, client=client, minute=minute,
                                    first_delivery_id=delivery_id)  # fmt: skip

        self.tally.add(client, new, lambda _: None)


def deliver(
    desk: CabApprovals, delivery: Delivery, secret: str, run_of: Callable[[str], Run | None]
) -> NoticeOutcome:
    """Hand the authenticated notice to the desk; what became of it. A run that still waits
    (the CAB has not decided, ServiceNow could not be asked) is an outcome, not a refusal."""
    try:
        run = desk.cab_approval_delivered(delivery, secret)
    except ApprovalDeliveryInvalid as err:
        return NoticeOutcome(
            status=refusal_status(delivery, secret), run_id=None, state=None, reason=err.reason
        )
    except ReviewError as err:  # waits: `CabApprovalPending`, `CabCheckFailed`, …
        run_id = str(getattr(err, "run_id", "") or "")
        waiting = run_of(run_id) if run_id else None
        return NoticeOutcome(
            status=202,
            run_id=run_id or None,
            state=waiting.state.value if waiting is not None else None,
            reason=str(err),
        )
    return NoticeOutcome(status=202, run_id=run.id, state=run.state.value, reason=run.reason)


__all__ = [
    "NOTICE_EVENT",
    "NOTICE_SOURCE",
    "REFUSALS_EVENT",
    "SECRET_SOURCE",
    "CabApprovals",
    "NoticeOutcome",
    "NoticeRefusals",
    "NoticeRefused",
    "ThrottledNotices",
    "authenticate",
    "change_of",
    "check_fresh",
    "deliver",
    "notice_id",
    "refusal_status",
    "waiting_run_id",
]
