"""Worker threads in the `serve` process: claim a queued delivery, drive its run, repeat.

On start, `recover()` puts back what a stopped process left: deliveries stored but not yet
decided or run are queued again; a run caught mid-way (its workspace is gone with the
process) ends `failed` with the reason, so nothing acknowledged is silently lost.
"""

from __future__ import annotations

import threading

from codefactory.domain import RunState
from codefactory.runs.loop import RunLoop
from codefactory.store.deliveries import DONE, QUEUED, DeliveryQueue, QueuedDelivery
from codefactory.store.runs import RunStore

RESTARTABLE = frozenset({RunState.RECEIVED, RunState.AUTHORIZED})
RESTING = frozenset(
    {RunState.PACKAGED, RunState.IN_REVIEW, RunState.APPROVED, RunState.IN_QA, RunState.IN_UAT}
)


class WorkerPool:
    """`count` threads draining the queue; `wake()` tells them a delivery was queued."""

    def __init__(
        self,
        *,
        queue: DeliveryQueue,
        store: RunStore,
        loop: RunLoop,
        count: int = 2,
        poll_s: float = 1.0,
    ) -> None:
        self.queue = queue
        self.store = store
        self.loop = loop
        self.count = count
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> int:
        """Recover, then start the threads; returns how many deliveries were put back."""
        recovered = self.recover()
        self._stopping.clear()
        for number in range(self.count):
            thread = threading.Thread(target=self._work, name=f"worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return recovered

    def stop(self, timeout_s: float = 10.0) -> None:
        """Let the threads finish their current run (up to `timeout_s`) and stop."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def wake(self) -> None:
        self._wake.set()

    def recover(self) -> int:
        """Queue again what a stopped process left; fail the runs it left mid-way."""
        recovered = 0
        for delivery in self.queue.unfinished():
            run = self.store.get_run(delivery.run_id) if delivery.run_id else None
            if run is not None and run.state in RESTARTABLE:
                self.queue.mark(delivery.id, QUEUED)
                recovered += 1
                continue
            if run is not None and not run.state.is_terminal and run.state not in RESTING:
                reason = (
                    f"interrupted: the serve process stopped while the run was "
                    f"`{run.state.value}`; trigger it again to retry"
                )
                with self.store.atomic() as tx:
                    tx.transition(run.id, RunState.FAILED, reason=reason, actor="dispatch")
            self.queue.mark(delivery.id, DONE, reason="recovered after a stop")
        return recovered

    def run_one(self) -> QueuedDelivery | None:
        """Claim one queued delivery and drive its run in this thread; None when idle."""
        claimed = self.queue.claim()
        if claimed is None:
            return None
        outcome = "no run"
        try:
            run = self.store.get_run(claimed.run_id) if claimed.run_id else None
            if run is not None:
                run = self.loop.execute(run.id)
                outcome = f"run {run.state.value}: {run.reason}"
        except Exception as err:  # noqa: BLE001 - a worker survives any one run
            outcome = f"worker error: {type(err).__name__}: {err}"
        finally:
            self.queue.mark(claimed.id, DONE, reason=outcome)
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
