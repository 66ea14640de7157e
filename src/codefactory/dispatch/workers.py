"""Worker threads in the `serve` process (the `threads` executor): claim a queued delivery,
decide it when intake stored it undecided (`runs.decisions`), drive its run under the run's
lease, repeat.

What a stopped process left is found by the `Sweeper`: runs whose lease expired are taken
over and resumed from their last recorded state; deliveries left unfinished are queued
again. Several `serve` processes may share one database: a live process's runs are never
touched, because their leases are alive.
"""

from __future__ import annotations

import logging
import threading

from codefactory.dispatch.driver import RunDriver
from codefactory.runs.decisions import DeliveryDecider
from codefactory.store.deliveries import DONE, QUEUED, DeliveryQueue, QueuedDelivery

log = logging.getLogger("codefactory.dispatch")


class WorkerPool:
    """`count` threads draining the queue; `wake()` tells them a delivery was queued."""

    def __init__(
        self,
        *,
        queue: DeliveryQueue,
        driver: RunDriver,
        count: int = 2,
        poll_s: float = 1.0,
        decider: DeliveryDecider | None = None,
    ) -> None:
        self.queue = queue
        self.driver = driver
        self.decider = decider
        self.count = count
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the threads."""
        self._stopping.clear()
        for number in range(self.count):
            thread = threading.Thread(target=self._work, name=f"worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Let the threads finish their current run (up to `timeout_s`) and stop."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def wake(self) -> None:
        self._wake.set()

    def run_one(self) -> QueuedDelivery | None:
        """Claim one queued delivery and drive its run in this thread; None when idle."""
        claimed = self.queue.claim()
        if claimed is None:
            return None
        drive_delivery(self.queue, self.driver, claimed.id, claimed.run_id, decider=self.decider)
        return claimed

    def drain(self) -> int:
        """Run queued deliveries in this thread until none is left; returns how many."""
        done = 0
        while self.run_one() is not None:
            done += 1
        return done

    def _work(self) -> None:
        while not self._stopping.is_set():
            if self.run_one() is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()


def drive_delivery(
    queue: DeliveryQueue,
    driver: RunDriver,
    row_id: int,
    run_id: str | None,
    *,
    decider: DeliveryDecider | None = None,
) -> str:
    """Drive a claimed delivery's run and record the outcome on the delivery; returns it.
    A delivery stored undecided (no run yet, its parsed trigger kept) is decided first by
    `decider`: refused, it rests `refused`; decided by another worker first, that worker
    drives it; a decision that fails leaves the delivery `running` for the sweeper to queue
    again. A run another worker holds is left to it (the delivery stays `running` until
    that worker, or the sweeper, finishes it)."""
    if run_id is None:
        decided = _decide(queue, decider, row_id)
        if decided is None or not decided.startswith("run "):
            return decided or "no run"
        run_id = decided.removeprefix("run ")
    try:
        run = driver.drive(run_id)
    except Exception as err:  # noqa: BLE001 - a worker survives any one run
        outcome = f"worker error: {type(err).__name__}: {err}"
        log.exception("driving run %s failed", run_id)
        queue.mark(row_id, DONE, reason=outcome)
        return outcome
    if run is None:
        return f"run {run_id} is held by another worker"
    outcome = f"run {run.state.value}: {run.reason}"
    queue.finish_run(run_id, outcome)
    return outcome


def _decide(queue: DeliveryQueue, decider: DeliveryDecider | None, row_id: int) -> str | None:
    """`run <id>` for an undecided delivery whose run may start, else what became of it;
    None (the delivery marked `done`, "no run") when there is nothing to decide."""
    event = queue.undecided(row_id) if decider is not None else None
    delivery = queue.get_by_id(row_id)
    if delivery is not None and delivery.run_id is not None:  # decided since it was claimed
        return f"run {delivery.run_id}"
    if decider is None or event is None or delivery is None:
        queue.mark(row_id, DONE, reason="no run")
        return None
    try:
        decided = decider.decide(delivery, event)
    except Exception as err:  # noqa: BLE001 - left running: the sweeper queues it again
        log.exception("deciding delivery %s failed", row_id)
        return f"decision failed: {type(err).__name__}: {err}"
    if decided.run is None or decided.status != QUEUED:
        return f"{decided.status}: {decided.reason}"
    if not decided.decided_here:
        return f"decided by another worker: run {decided.run.id}"
    return f"run {decided.run.id}"
