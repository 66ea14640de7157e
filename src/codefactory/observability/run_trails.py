"""A run's recorded steps, as tracing reads them from the store (`runs`, `run_states`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from codefactory.store.models import RunRow, RunStateRow


@dataclass(frozen=True, kw_only=True)
class Step:
    """One `run_states` row: the run entered `state` at `at` (UTC) for `reason`."""

    row_id: int
    state: str
    reason: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
class RunTrail:
    """What a trace of the run shows: its repository, engine and steps in order."""

    repository: str
    engine: str
    steps: tuple[Step, ...]

    def entered(self, state: str) -> int | None:
        """Index of the latest step into `state`, None if the run never entered it."""
        for index in range(len(self.steps) - 1, -1, -1):
            if self.steps[index].state == state:
                return index
        return None


class StoreTrails:
    """Reads run trails from the store's database (two indexed queries per call)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __call__(self, run_id: str) -> RunTrail | None:
        """The run's trail, None when the store has no such run."""
        with self._engine.connect() as connection:
            run = connection.execute(
                select(RunRow.repository, RunRow.engine).where(RunRow.id == run_id)
            ).first()
            if run is None:
                return None
            rows = connection.execute(
                select(RunStateRow.id, RunStateRow.state, RunStateRow.reason, RunStateRow.at)
                .where(RunStateRow.run_id == run_id)
                .order_by(RunStateRow.id)
            ).all()
        steps = tuple(
            Step(row_id=row_id, state=state, reason=reason, at=_utc(at))
            for row_id, state, reason, at in rows
        )
        return RunTrail(repository=run.repository, engine=run.engine, steps=steps)


def _utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
