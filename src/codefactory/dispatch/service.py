"""A process's moving parts, wired from one factory: intake, execution, scheduler.

`threads` executor (the default): `serve` takes deliveries and its worker threads drive the
runs. `celery` executor: `serve` takes deliveries and publishes them (the outbox);
`codefactory worker` processes drive the runs (`dispatch/worker.py`). Every process that
drives runs heartbeats their leases and sweeps for runs and deliveries a stopped process left.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codefactory.dispatch.driver import RunDriver
from codefactory.dispatch.heartbeat import Heartbeats
from codefactory.dispatch.scheduler import Scheduler
from codefactory.dispatch.sweeper import Sweeper
from codefactory.dispatch.workers import WorkerPool
from codefactory.runs.decisions import DeliveryDecider
from codefactory.store.deliveries import DeliveryQueue
from codefactory.store.leases import RunLeases, worker_name
from codefactory.triggers.registry import webhook_sources

if TYPE_CHECKING:
    from codefactory.dispatch.celery_executor import Outbox
    from codefactory.factory import Factory
    from codefactory.runs.intake import WebhookIntake


@dataclass(frozen=True, kw_only=True)
class Execution:
    """What drives runs in this process: leases kept alive, a driver, the sweeper."""

    leases: RunLeases
    heartbeats: Heartbeats
    driver: RunDriver
    sweeper: Sweeper

    def start(self) -> None:
        self.heartbeats.start()
        self.sweeper.start()

    def stop(self) -> None:
        self.sweeper.stop()
        self.heartbeats.stop()


def build_execution(factory: Factory, *, role: str, max_takeovers: int = 2) -> Execution:
    """The driver, heartbeats and sweeper of a process named after `role` (`serve`,
    `worker`), from `factory.settings.dispatch`."""
    from codefactory.observability.logs import run_logging

    settings = factory.settings.dispatch
    leases = RunLeases(factory.store.engine, factory.audit, lease_s=settings.lease_seconds)
    heartbeats = Heartbeats(leases, interval_s=settings.heartbeat_s)
    driver = RunDriver(
        loop=factory.loop,
        leases=leases,
        heartbeats=heartbeats,
        process=worker_name(role),
        context=run_logging,
    )
    sweeper = Sweeper(
        driver=driver,
        leases=leases,
        queue=DeliveryQueue(factory.store.engine),
        store=factory.store,
        scan_s=settings.scan_s,
        requeue_after_s=settings.requeue_after_s,
        max_takeovers=max_takeovers,
    )
    return Execution(leases=leases, heartbeats=heartbeats, driver=driver, sweeper=sweeper)


def build_decider(factory: Factory) -> DeliveryDecider:
    """What decides deliveries intake stored undecided, in a process that drives runs."""
    return DeliveryDecider(
        store=factory.store,
        loop=factory.loop,
        queue=DeliveryQueue(factory.store.engine),
        settings=factory.settings.triggers,
        agent_id=factory.settings.agent_id,
        directory=factory.identity.directory,
        policy=factory.loop.policy,
    )


@contextmanager
def leased_driving(factory: Factory, *, role: str) -> Iterator[RunDriver]:
    """A driver for runs this process starts itself (`codefactory trigger`, the demo): each
    run driven under its lease, heartbeated while the block lasts, so no Celery worker or
    `serve` takes it over while it is alive, and one does if this process dies."""
    execution = build_execution(factory, role=role)
    execution.heartbeats.start()
    try:
        yield execution.driver
    finally:
        execution.heartbeats.stop()


@dataclass(frozen=True, kw_only=True)
class Dispatch:
    """Intake feeding the durable queue, what drains it here, the clock firing schedules."""

    intake: WebhookIntake
    queue: DeliveryQueue
    workers: WorkerPool
    scheduler: Scheduler
    execution: Execution
    outbox: Outbox | None = None
    executing: bool = True
    """Whether this process drives runs (worker threads > 0 with the `threads` executor)."""

    def start(self) -> None:
        """Start what drives runs here (if anything), the outbox and the scheduler."""
        if self.executing:
            self.execution.start()
            self.workers.start()
        if self.outbox is not None:
            self.outbox.start()
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        if self.outbox is not None:
            self.outbox.stop()
        if self.executing:
            self.workers.stop()
            self.execution.stop()
        self.intake.close()  # the rejection counts still pending become audit events


def build_dispatch(factory: Factory, *, workers: int = 2) -> Dispatch:
    """Wire intake, queue, execution and the scheduler. With the `threads` executor,
    `workers` threads drive runs here (0: store and decide only); with `celery`, nothing
    executes here and queued deliveries are published to the broker."""
    from codefactory.runs.intake import WebhookIntake  # `trigger` drives its own: not loaded

    queue = DeliveryQueue(factory.store.engine)
    execution = build_execution(factory, role="serve", max_takeovers=max(workers, 1))
    celery = factory.settings.dispatch.executor == "celery"
    pool = WorkerPool(
        queue=queue,
        driver=execution.driver,
        count=0 if celery else workers,
        decider=build_decider(factory),
    )
    outbox: Outbox | None = None
    if celery:
        from codefactory.dispatch.celery_executor import Outbox, celery_app

        outbox = Outbox(celery_app(factory.settings.dispatch), queue)
    execution.sweeper.on_requeued = outbox.wake if outbox is not None else pool.wake
    settings = factory.settings.triggers
    intake = WebhookIntake(
        store=factory.store,
        loop=factory.loop,
        queue=queue,
        settings=settings,
        agent_id=factory.settings.agent_id,
        sources=webhook_sources(settings),
        on_queued=outbox.wake if outbox is not None else pool.wake,
        directory=factory.identity.directory,
        policy=factory.loop.policy,
        reconciler=factory.reconcile,  # forge review and merge events (review/reconcile.py)
        cab_approvals=factory.review,  # ServiceNow's approval notices (runs/change_notices.py)
    )
    scheduler = Scheduler(intake=intake, schedules=settings.schedules)
    return Dispatch(
        intake=intake,
        queue=queue,
        workers=pool,
        scheduler=scheduler,
        execution=execution,
        outbox=outbox,
        executing=not celery and workers > 0,
    )
