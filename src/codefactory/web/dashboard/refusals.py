"""Refused verdict posts, rate-limited per person: any signed-in person may post a verdict
form, and each refused one is a `review-refused` (or `sign-off-refused`) audit event, so a
person with no role could otherwise grow the audit log at will.

The first `per_minute` refusals of a person in a minute are handled as before, each audited
in full by the review desk (or as a forged form); past them the person's posts are answered
`429` without reaching the desk, and only counted: one `verdict-refusals` event per person
and minute, written when the minute is over (and at shutdown: `flush`). The budget and the
tally are the webhook intake's (`triggers.rejections.RejectionBudget`,
`triggers.tally.MinuteTally`), keyed by the directory person, never by anything posted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codefactory.audit import events
from codefactory.domain import AuditEvent
from codefactory.identity.directory import Person
from codefactory.triggers.rejections import RejectionBudget, capped
from codefactory.triggers.tally import Clock, MinuteTally, minute_start

EVENT = events.VerdictRefusals.NAME
SOURCE = "dashboard-verdict"
PER_MINUTE = 10
"""Refused verdict posts of one person audited in full in a minute; more are answered 429."""
MAX_TEXT = 128


@dataclass(kw_only=True)
class RefusalCount:
    """A person's verdict posts answered 429 in one minute, unaudited one by one."""

    actor: str
    minute: int
    count: int = 0
    first_run_id: str = ""

    def audit_data(self) -> dict[str, Any]:
        """The fields of the `verdict-refusals` event."""
        return {
            "count": self.count,
            "minute": minute_start(self.minute),
            "first_run_id": capped(self.first_run_id, MAX_TEXT),
        }


Record = Callable[[AuditEvent], object]
"""`RunRepository.append(event)`: one audit event in a transaction of its own."""


class VerdictRefusals:
    """Per person: the refused verdict posts left this minute, and the count of those
    answered 429 (published as `verdict-refusals`); thread-safe."""

    def __init__(
        self, record: Record, *, per_minute: int = PER_MINUTE, clock: Clock = time.time
    ) -> None:
        self._record = record
        self._clock = clock
        self.per_minute = per_minute
        self._budget = RejectionBudget(per_minute, clock=clock)
        self._tally: MinuteTally[str, RefusalCount] = MinuteTally(self._publish, clock=clock)

    def exhausted(self, person: Person) -> bool:
        """Whether `person` has had `per_minute` refusals this minute (then their post is
        answered 429); publishes the last minute's counts when it is over."""
        self._tally.flush(only_ended=True)
        return self._budget.exhausted(SOURCE, person.id)

    def refused(self, person: Person) -> None:
        """One of `person`'s posts was refused (and audited in full)."""
        self._budget.spend(SOURCE, person.id)

    def throttled(self, person: Person, run_id: str) -> None:
        """One of `person`'s posts was answered 429, not audited on its own: counted."""

        def new(minute: int) -> RefusalCount:
            return RefusalCount(actor=person.actor, minute=minute, first_run_id=run_id)

        self._tally.add(person.actor, new, lambda _: None)

    def retry_after(self) -> int:
        """Seconds until the next minute, when the budgets start again."""
        return max(1, 60 - int(self._clock()) % 60)

    def publish_ended(self) -> None:
        """Publish the counts of a minute that is over (each dashboard request calls it)."""
        self._tally.flush(only_ended=True)

    def flush(self) -> None:
        """Publish every pending count (at shutdown)."""
        self._tally.flush()

    def _publish(self, counts: list[RefusalCount]) -> None:
        for entry in counts:
            self._record(
                events.VerdictRefusals(
                    actor=entry.actor, per_minute=self.per_minute, **entry.audit_data()
                )
            )
