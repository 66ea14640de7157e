"""Drive one run under its lease: acquire (or take over), heartbeat, execute, release.

Both executors (worker threads in `serve`, Celery workers) drive runs only through here, so
a run is executed by one owner at a time whoever delivers the work and however often.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from codefactory.dispatch.heartbeat import Heartbeats
from codefactory.domain import Run
from codefactory.runs.loop import RunLoop
from codefactory.store.leases import LeaseLost, RunLeases, fenced, forget_lost

log = logging.getLogger("codefactory.dispatch")

MAX_TAKEOVERS = 3
"""A run taken over more often than this is failed instead of resumed again: whatever stops
its workers (memory, a crash it causes) would stop the next one too."""

RunContext = Callable[[str], AbstractContextManager[object]]
"""Wraps the driving of one run (JSON logs carry its id: `observability.logs.run_logging`)."""


class RunDriver:
    """Drives runs for one worker process named `process` (`store.leases.worker_name`)."""

    def __init__(
        self,
        *,
        loop: RunLoop,
        leases: RunLeases,
        heartbeats: Heartbeats,
        process: str,
        context: RunContext | None = None,
    ) -> None:
        self.loop = loop
        self.leases = leases
        self.heartbeats = heartbeats
        self.process = process
        self.context = context
        self._numbers = itertools.count(1)

    def drive(self, run_id: str) -> Run | None:
        """Execute the run from its last recorded state while holding its lease; returns the
        stored run, or None when another owner holds the lease (or took it over meanwhile).
        Each call is its own owner (`<process>/<n>`), so two threads of one process never
        share a lease."""
        owner = f"{self.process}/{next(self._numbers)}"
        lease = self.leases.acquire(run_id, owner)
        if lease is None:
            return None
        if lease.taken_over_from:
            log.warning("run %s taken over from %s", run_id, lease.taken_over_from)
        self.heartbeats.hold(lease)
        wrapped = self.context(run_id) if self.context is not None else nullcontext()
        try:
            with wrapped, fenced(lease):
                if lease.takeovers > MAX_TAKEOVERS:
                    self.loop.fail(
                        run_id,
                        f"its workers stopped {lease.takeovers} times while driving it (the "
                        f"last was {lease.taken_over_from}); not resumed again",
                    )
                run = self.loop.execute(run_id)
        except LeaseLost as lost:
            log.warning("%s", lost)
            return None
        finally:
            self.heartbeats.drop(lease)
            forget_lost(lease)
        self.leases.release(lease)
        return run
