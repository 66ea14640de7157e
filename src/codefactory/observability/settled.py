"""New rows of a table that only grows, each returned once, with ids from a sequence.

Each call reads the rows past the highest id seen so far. PostgreSQL hands out ids when a row
is inserted, not when its transaction commits, so a row may become visible below ids already
read: every id skipped over (a hole) is looked for again at each call, until it appears or
`settle_s` has passed since it was first skipped (by this process's clock). A hole that
never fills belonged to a transaction that rolled back, or that stayed open longer than
`settle_s`, which the factory's short transactions never do. At most `max_holes` are
watched; a wider gap is a sequence that jumped, not rows in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import InstrumentedAttribute

SETTLE_S = 300.0
MAX_HOLES = 1000


class SettledRows:
    """Reads `columns` of rows not returned before, by `id_column`; each row comes back as
    a tuple whose first item is its id."""

    def __init__(
        self,
        id_column: InstrumentedAttribute[int],
        columns: Sequence[InstrumentedAttribute[Any]],
        *,
        settle_s: float = SETTLE_S,
        max_holes: int = MAX_HOLES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._id = id_column
        self._columns = columns
        self._settle_s = settle_s
        self._max_holes = max_holes
        self._clock = clock
        self._highest = 0
        self._holes: dict[int, float] = {}
        """Ids skipped over → when they were first missed."""

    def advance(self, connection: Connection) -> list[tuple[Any, ...]]:
        """The rows not returned before, in id order: holes that filled, then new rows."""
        now = self._clock()
        query = select(self._id, *self._columns).order_by(self._id)
        rows = [tuple(r) for r in connection.execute(query.where(self._id > self._highest))]
        if self._holes:
            filled = connection.execute(query.where(self._id.in_(list(self._holes))))
            rows = sorted([*(tuple(r) for r in filled), *rows], key=lambda row: row[0])
        for row in rows:
            self._holes.pop(row[0], None)
        self._watch_gaps([row[0] for row in rows if row[0] > self._highest], now)
        self._holes = {i: t for i, t in self._holes.items() if now - t < self._settle_s}
        return rows

    def _watch_gaps(self, new_ids: list[int], now: float) -> None:
        previous = self._highest
        for row_id in new_ids:
            gap = range(previous + 1, row_id)
            if 0 < len(gap) <= self._max_holes - len(self._holes):
                self._holes.update(dict.fromkeys(gap, now))
            previous = row_id
        self._highest = previous
