"""The serve process's moving parts, wired from one factory: intake, workers, scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from codefactory.dispatch.scheduler import Scheduler
from codefactory.dispatch.workers import WorkerPool
from codefactory.runs.intake import WebhookIntake
from codefactory.store.deliveries import DeliveryQueue
from codefactory.triggers.registry import webhook_sources

if TYPE_CHECKING:
    from codefactory.factory import Factory


@dataclass(frozen=True, kw_only=True)
class Dispatch:
    """Intake feeding the durable queue, the workers draining it, the clock firing schedules."""

    intake: WebhookIntake
    queue: DeliveryQueue
    workers: WorkerPool
    scheduler: Scheduler

    def start(self) -> int:
        """Recover what a stopped process left, start workers and scheduler; returns the
        number of deliveries put back in the queue."""
        recovered = self.workers.start() if self.workers.count else self.workers.recover()
        self.scheduler.start()
        return recovered

    def stop(self) -> None:
        self.scheduler.stop()
        self.workers.stop()
        self.intake.close()  # the rejection counts still pending become audit events


def build_dispatch(factory: Factory, *, workers: int = 2) -> Dispatch:
    """Wire intake, queue, workers (`workers=0`: store and decide only) and the scheduler."""
    queue = DeliveryQueue(factory.store.engine)
    pool = WorkerPool(queue=queue, store=factory.store, loop=factory.loop, count=workers)
    settings = factory.settings.triggers
    intake = WebhookIntake(
        store=factory.store,
        loop=factory.loop,
        queue=queue,
        settings=settings,
        agent_id=factory.settings.agent_id,
        sources=webhook_sources(settings),
        on_queued=pool.wake,
        directory=factory.identity.directory,
        policy=factory.loop.policy,
        reconciler=factory.reconcile,  # forge review and merge events (review/reconcile.py)
        cab_approvals=factory.review,  # ServiceNow's approval notices (runs/change_notices.py)
    )
    scheduler = Scheduler(intake=intake, schedules=settings.schedules)
    return Dispatch(intake=intake, queue=queue, workers=pool, scheduler=scheduler)
