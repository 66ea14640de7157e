"""Schedules: cron expressions (UTC, `cronsim`) from `triggers.schedules` start runs.

A schedule's fire time is its delivery id (`<name>@<time>`), so each time fires once even
with several `serve` processes. Times missed while no process ran are not caught up.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cronsim import CronSim

from codefactory.domain import TriggerEvent
from codefactory.triggers.port import ParsedDelivery
from codefactory.triggers.settings import ScheduleSettings

if TYPE_CHECKING:
    from codefactory.runs.intake import Receipt, WebhookIntake

SOURCE = "schedule"


def fire_times(schedule: ScheduleSettings, after: datetime, until: datetime) -> list[datetime]:
    """The schedule's fire times in `(after, until]`."""
    times = []
    for at in CronSim(schedule.cron, after.astimezone(UTC)):
        if at > until:
            break
        if at > after:
            times.append(at)
    return times


def scheduled_event(schedule: ScheduleSettings, at: datetime) -> ParsedDelivery:
    """The delivery a schedule makes at `at`: an autonomous request for its kind of change."""
    delivery_id = f"{schedule.name}@{at.astimezone(UTC):%Y-%m-%dT%H:%MZ}"
    digest = hashlib.sha256(schedule.model_dump_json().encode() + delivery_id.encode())
    event = TriggerEvent(
        source=SOURCE,
        kind=schedule.kind,
        external_id=delivery_id,
        actor=f"schedule:{schedule.name}",
        repository=schedule.repository,
        title=schedule.title,
        body=schedule.body,
        labels=tuple(schedule.labels),
        received_at=at,
        payload_digest="sha256:" + digest.hexdigest(),
        delivery_id=delivery_id,
        event="schedule.fired",
        autonomous=True,
        attributes={"cron": schedule.cron},
    )
    return ParsedDelivery(delivery_id=delivery_id, event="schedule.fired", trigger=event)


class Scheduler:
    """A thread that fires due schedules through intake, like any other delivery, and
    publishes intake's counts (rejections, duplicates) once their minute is over."""

    def __init__(
        self,
        *,
        intake: WebhookIntake,
        schedules: Sequence[ScheduleSettings],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.intake = intake
        self.schedules = tuple(schedules)
        self.clock = clock
        self.last = clock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: datetime | None = None) -> list[Receipt]:
        """Fire every schedule due in `(last tick, now]`."""
        now = now or self.clock()
        receipts = []
        for schedule in self.schedules:
            for at in fire_times(schedule, self.last, now):
                parsed = scheduled_event(schedule, at)
                assert parsed.trigger is not None
                receipts.append(
                    self.intake.accept(
                        SOURCE,
                        parsed,
                        digest=parsed.trigger.payload_digest,
                        received_at=now,
                    )
                )
        self.last = max(self.last, now)
        return receipts

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)

    def _next_wait(self) -> float:
        now = self.clock()
        next_minute = 60.0 - (now.timestamp() % 60.0) + 0.1  # intake's counts are due
        upcoming = [next(iter(CronSim(s.cron, self.last))) for s in self.schedules]
        seconds = min([(at - now).total_seconds() for at in upcoming] + [next_minute])
        return max(0.5, min(seconds, timedelta(minutes=1).total_seconds()))

    def _run(self) -> None:
        while not self._stopping.wait(self._next_wait()):
            try:
                self.tick()
                self.intake.flush_ended()
            except Exception:  # noqa: BLE001 - a busy store must not stop the clock
                continue
