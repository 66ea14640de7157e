"""How long runs stay in each state, from consecutive `run_states` rows, counted once each.

`run_states` only grows, so the histogram is kept in memory and each scrape reads only the
rows past a floor: O(new transitions), not O(history). A row's step ends at the next row of
the same run; the last row of a run that is not over is an open step and is not counted yet.

Ids come from a sequence (PostgreSQL) that two transactions may commit out of order, so a
row may appear below ids already read. Rows above the floor are therefore re-read until they
settle: the floor moves up to the newest row written more than `settle_s` ago, and an id
below it that never appeared belongs to a transaction that rolled back (or stayed open longer
than `settle_s`, which the factory's short transactions never do).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select

from codefactory.domain import RunState
from codefactory.store.models import RunStateRow

STEP_BUCKETS_S = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                  14400.0, 86400.0, 604800.0)  # fmt: skip
"""Upper bounds (seconds) of the histogram's buckets: a lint step takes seconds, a review
days."""
SETTLE_S = 300.0
TERMINAL = frozenset(state.value for state in RunState if state.is_terminal)


@dataclass
class StepHistogram:
    """Completed steps of one state: counts per bucket (not cumulative) and their sum."""

    counts: list[int]
    total_s: float = 0.0

    def observe(self, seconds: float, bounds: Sequence[float]) -> None:
        self.counts[bisect_left(bounds, seconds)] += 1
        self.total_s += seconds

    def cumulative(self, bounds: Sequence[float]) -> list[tuple[str, int]]:
        """`(le, count)` pairs as the exposition format lists them, ending with `+Inf`."""
        pairs, running = [], 0
        for bound, count in zip([*map(repr, bounds), "+Inf"], self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


@dataclass
class StepDurations:
    """The histogram of step durations per state, advanced by `advance(connection)`."""

    bounds: Sequence[float] = STEP_BUCKETS_S
    settle_s: float = SETTLE_S
    histograms: dict[str, StepHistogram] = field(default_factory=dict)
    _floor: int = 0
    _counted: set[int] = field(default_factory=set)
    _open: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    def advance(self, connection: Connection, now: datetime | None = None) -> None:
        """Count the steps the rows written since the last call completed."""
        rows = connection.execute(
            select(RunStateRow.id, RunStateRow.run_id, RunStateRow.state, RunStateRow.at)
            .where(RunStateRow.id > self._floor)
            .order_by(RunStateRow.id)
        ).all()
        settled_before = (now or datetime.now(UTC)) - timedelta(seconds=self.settle_s)
        floor = self._floor
        for row_id, run_id, state, at in rows:
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            if row_id not in self._counted:
                self._counted.add(row_id)
                self._step(run_id, state, at)
            if at <= settled_before:
                floor = row_id
        self._floor = floor
        self._counted = {row_id for row_id in self._counted if row_id > floor}

    def _step(self, run_id: str, state: str, at: datetime) -> None:
        previous = self._open.pop(run_id, None)
        if previous is not None:
            last_state, since = previous
            seconds = max((at - since).total_seconds(), 0.0)  # clocks of two workers
            histogram = self.histograms.get(last_state)
            if histogram is None:
                histogram = self.histograms[last_state] = StepHistogram(
                    [0] * (len(self.bounds) + 1)
                )
            histogram.observe(seconds, self.bounds)
        if state not in TERMINAL:
            self._open[run_id] = (state, at)
