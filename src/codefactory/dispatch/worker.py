"""`codefactory worker`: one Celery worker process driving runs (the `celery` executor).

The process builds the factory once, starts heartbeats, the sweeper (takeovers of runs whose
owner stopped heartbeating, requeues of stale deliveries) and the outbox (publishing what the
sweeper queued again), then consumes `codefactory.drive` tasks on `concurrency` threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.dispatch.celery_executor import Outbox, celery_app, register_tasks
from codefactory.dispatch.service import build_decider, build_execution
from codefactory.store.deliveries import DeliveryQueue

if TYPE_CHECKING:
    from codefactory.factory import Factory


def run_worker(factory: Factory, *, concurrency: int, loglevel: str = "INFO") -> None:
    """Consume tasks until stopped (SIGTERM finishes the running tasks; SIGKILL loses
    nothing: their leases expire and another worker takes the runs over)."""
    settings = factory.settings.dispatch
    app = celery_app(settings)
    queue = DeliveryQueue(factory.store.engine)
    execution = build_execution(factory, role="worker", max_takeovers=concurrency)
    outbox = Outbox(app, queue, poll_s=max(settings.scan_s, 1.0))
    execution.sweeper.on_requeued = outbox.wake
    decider = build_decider(factory)
    register_tasks(app, lambda: (queue, execution.driver, decider))
    execution.start()
    outbox.start()
    try:
        app.worker_main(
            argv=[
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                f"--loglevel={loglevel}",
                "--without-gossip",
                "--without-mingle",
                "--queues=codefactory",
            ]
        )
    finally:
        outbox.stop()
        execution.stop()
