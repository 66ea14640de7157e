"""Finds the work a stopped process left and starts it again, in every executing process.

Every `scan_s` seconds: each run whose owner stopped heartbeating (its lease expired) is
taken over and driven here, in a thread of this process, from its last recorded state.
Every `requeue_after_s` seconds: each delivery left unfinished that long whose run no live
worker holds is queued again (a process stopped between claiming it and leasing its run, a
broker lost its message); a delivery whose run already rests or ended is marked done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from codefactory.dispatch.driver import RunDriver
from codefactory.domain import RunState
from codefactory.store.deliveries import DeliveryQueue
from codefactory.store.leases import RunLeases
from codefactory.store.port import RunRepository

log = logging.getLogger("codefactory.dispatch")

RESTING = frozenset({RunState.IN_REVIEW, RunState.APPROVED, RunState.IN_QA, RunState.IN_UAT})
"""States in which a run waits for people, owned by no worker."""


class Sweeper:
    """Takes over expired runs (at most `max_takeovers` driven at once in this process) and
    queues stale deliveries again; `on_requeued` is told when it did (wakes the workers or
    the outbox)."""

    def __init__(
        self,
        *,
        driver: RunDriver,
        leases: RunLeases,
        queue: DeliveryQueue,
        store: RunRepository,
        scan_s: float,
        requeue_after_s: float,
        max_takeovers: int = 2,
        on_requeued: Callable[[], None] | None = None,
    ) -> None:
        self.driver = driver
        self.leases = leases
        self.queue = queue
        self.store = store
        self.scan_s = scan_s
        self.requeue_after_s = requeue_after_s
        self.max_takeovers = max_takeovers
        self.on_requeued = on_requeued
        self._driving: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_requeue = 0.0

    def take_over(self) -> list[str]:
        """Start driving, in threads of this process, runs whose lease expired; returns them."""
        return self._drive_here(self.leases.expired(limit=self.max_takeovers * 2))

    def adopt_orphans(self) -> list[str]:
        """Start driving runs under way with neither a live lease nor an unfinished delivery
        (`RunLeases.orphans`), older than `requeue_after_s`; returns them."""
        resting = frozenset(state.value for state in RESTING)
        orphans = self.leases.orphans(older_than_s=self.requeue_after_s, resting=resting)
        return self._drive_here(orphans)

    def _drive_here(self, run_ids: list[str]) -> list[str]:
        started = []
        for run_id in run_ids:
            with self._lock:
                self._driving = {r: t for r, t in self._driving.items() if t.is_alive()}
                if run_id in self._driving or len(self._driving) >= self.max_takeovers:
                    continue
                thread = threading.Thread(
                    target=self._drive, args=(run_id,), name=f"takeover-{run_id}", daemon=True
                )
                self._driving[run_id] = thread
            thread.start()
            started.append(run_id)
        return started

    def _drive(self, run_id: str) -> None:
        try:
            run = self.driver.drive(run_id)
            if run is not None:
                self.queue.finish_run(run_id, f"run {run.state.value}: {run.reason}")
        except Exception:  # noqa: BLE001 - a takeover thread survives any one run
            log.exception("taking over run %s failed", run_id)

    def requeue(self) -> int:
        """Queue again the stale deliveries no live worker holds; returns how many."""
        requeued = 0
        for delivery in self.queue.stale(older_than_s=self.requeue_after_s):
            run = self.store.get_run(delivery.run_id) if delivery.run_id else None
            if run is None:
                # Stored undecided (its parsed trigger kept): a process stopped before or while
                # deciding it, or its message was lost. Queued again: a second decider finds
                # the run attached and makes none. Without a trigger, nothing is left to do.
                if self.queue.undecided(delivery.id) is not None and self.queue.requeue(
                    delivery.id, older_than_s=self.requeue_after_s
                ):
                    log.warning("undecided delivery %s queued again", delivery.id)
                    requeued += 1
                continue
            if run.state.is_terminal or run.state in RESTING:
                self.queue.finish_run(run.id, f"run {run.state.value}: {run.reason}")
                continue
            if self.leases.holder(run.id) is not None:
                continue  # a live worker drives it
            if self.queue.requeue(delivery.id, older_than_s=self.requeue_after_s):
                log.warning("delivery %s of run %s queued again", delivery.id, run.id)
                requeued += 1
        if requeued and self.on_requeued is not None:
            self.on_requeued()
        return requeued

    def sweep(self) -> None:
        """One pass: take over, and requeue when `requeue_after_s` has passed since the last."""
        self.take_over()
        if time.monotonic() - self._last_requeue >= min(self.requeue_after_s, 30.0):
            self._last_requeue = time.monotonic()
            self.requeue()
            self.adopt_orphans()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for thread in list(self._driving.values()):
            thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stopping.wait(self.scan_s):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - a busy store must not stop the sweeps
                log.exception("sweep failed")
