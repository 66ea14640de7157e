"""How long runs stay in each state, from consecutive `run_states` rows, counted once each.

`run_states` only grows, so the histogram is kept in memory and each scrape reads only the
new rows (`SettledRows`): O(new transitions), not O(history). A row's step ends at the next
row of the same run; the last row of a run that is not over is an open step, not counted.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection

from codefactory.domain import RunState
from codefactory.observability.settled import SettledRows
from codefactory.store.models import RunStateRow

STEP_BUCKETS_S = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                  14400.0, 86400.0, 604800.0)  # fmt: skip
"""Upper bounds (seconds) of the histogram's buckets: a lint step takes seconds, a review
days."""
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

    rows: SettledRows = field(
        default_factory=lambda: SettledRows(
            RunStateRow.id, [RunStateRow.run_id, RunStateRow.state, RunStateRow.at]
        )
    )
    bounds: Sequence[float] = STEP_BUCKETS_S
    histograms: dict[str, StepHistogram] = field(default_factory=dict)
    _open: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    def advance(self, connection: Connection) -> None:
        """Count the steps the rows written since the last call completed."""
        for _, run_id, state, at in self.rows.advance(connection):
            self._step(run_id, state, at if at.tzinfo else at.replace(tzinfo=UTC))

    def _step(self, run_id: str, state: str, at: datetime) -> None:
        previous = self._open.pop(run_id, None)
        if previous is not None:
            last_state, since = previous
            seconds = max((at - since).total_seconds(), 0.0)  # clocks of two workers
            empty = StepHistogram([0] * (len(self.bounds) + 1))
            self.histograms.setdefault(last_state, empty).observe(seconds, self.bounds)
        if state not in TERMINAL:
            self._open[run_id] = (state, at)
