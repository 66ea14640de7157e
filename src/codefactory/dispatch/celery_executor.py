"""The `celery` executor: runs driven by `codefactory worker` processes on any machine.

Intake stores a delivery `queued`, decided or to be decided by the worker that claims it
(the deliveries table is the transactional outbox); an
`Outbox` thread in every process of the `celery` executor publishes queued rows as
`codefactory.drive` tasks and marks them `sent`. A worker's task claims the delivery
(`running`) and drives its run through the `RunDriver` (the run's lease decides who executes
it; a duplicate message finds the run held, resting or ended, and does nothing). Tasks are
acknowledged late (after they return) and rejected back to the broker when their worker is
lost; a worker that dies mid-run leaves a lease that expires, and another worker's sweeper
takes the run over from its last recorded state. The state machine in the store is the only
truth: a lost, repeated or reordered message costs time, never a run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from celery import Celery

from codefactory.dispatch.driver import RunDriver
from codefactory.dispatch.workers import drive_delivery
from codefactory.runs.decisions import DeliveryDecider
from codefactory.store.deliveries import QUEUED, RUNNING, SENT, DeliveryQueue

if TYPE_CHECKING:
    from codefactory.dispatch.settings import DispatchSettings

log = logging.getLogger("codefactory.dispatch")

DRIVE_TASK = "codefactory.drive"


def celery_app(settings: DispatchSettings) -> Celery:
    """A Celery app for the configured broker: JSON messages only, late acknowledgement,
    one message prefetched per worker thread, no result backend (results live in the store).
    `ValueError` when no broker URL is set."""
    broker = settings.broker_url.get_secret_value()
    if not broker:
        raise ValueError(
            "the celery executor needs a broker: set CODEFACTORY_DISPATCH__BROKER_URL "
            "(redis://host:6379/0 or amqp://user:password@host:5672//)"
        )
    app = Celery("codefactory", broker=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": max(settings.requeue_after_s, 30.0)},
        task_default_queue="codefactory",
    )
    return app


class Outbox:
    """Publishes queued deliveries as tasks, then marks them `sent`: on `wake()` and every
    `poll_s` seconds. A broker that is down leaves them `queued` for the next try."""

    def __init__(self, app: Celery, queue: DeliveryQueue, *, poll_s: float = 1.0) -> None:
        self.app = app
        self.queue = queue
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self) -> int:
        """Publish every queued delivery once; returns how many were sent."""
        sent = 0
        for delivery in self.queue.unsent():
            self.app.send_task(DRIVE_TASK, args=[delivery.id])
            if self.queue.move(delivery.id, (QUEUED,), SENT):
                sent += 1
        return sent

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.publish()
            except Exception:  # noqa: BLE001 - a broker that is down: try again later
                log.exception("publishing queued deliveries failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()


def register_tasks(
    app: Celery, runtime: Callable[[], tuple[DeliveryQueue, RunDriver, DeliveryDecider]]
) -> None:
    """Register `codefactory.drive` on `app`; `runtime()` returns this process's queue,
    driver and decider (built once, on the worker's start)."""

    @app.task(name=DRIVE_TASK, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
    def drive(row_id: object, *_ignored: object) -> str:
        queue, driver, decider = runtime()
        return drive_task(queue, driver, row_id, decider=decider)

    del drive


def drive_task(
    queue: DeliveryQueue,
    driver: RunDriver,
    row_id: object,
    *,
    decider: DeliveryDecider | None = None,
) -> str:
    """What the `codefactory.drive` task does: claim the delivery (`queued` or `sent` to
    `running`), decide it if intake stored it undecided, drive the run, record the outcome
    on the delivery (`workers.drive_delivery`). The message is trusted for nothing but the row id: a
    malformed one, or one for a delivery not waiting (a duplicate, a replay, a forgery, or
    a redelivery after its worker died, which the sweeper covers), does nothing."""
    if not isinstance(row_id, int) or isinstance(row_id, bool):
        log.warning("codefactory.drive message refused: row id %r", row_id)
        return "refused: the message names no delivery row"
    delivery = queue.get_by_id(row_id)
    if delivery is None or not queue.move(row_id, (QUEUED, SENT), RUNNING):
        return f"delivery {row_id} is not waiting for a worker: nothing to do"
    return drive_delivery(queue, driver, row_id, delivery.run_id, decider=decider)
