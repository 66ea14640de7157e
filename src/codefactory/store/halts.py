"""The organisation-wide halt switch (`codefactory halt`): the `halts` table as a repository.

A halt is one row; the halt in force is the newest row without `lifted_at`. Every process that
shares the database (`serve`, Celery `worker`s on other machines) learns of a halt by reading
this table (`policy/halt.py` caches the answer for about a second), so raising and lifting
need no message between processes. Raising and lifting write inside the caller's
transaction (`RunStore.atomic()`), so the row and its audit event commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from codefactory.store.errors import StoreError
from codefactory.store.operations_tables import HaltRow


class HaltConflict(StoreError):
    """Raising while a halt is in force, or lifting when none is: says which halt, or none."""


@dataclass(frozen=True, kw_only=True)
class Halt:
    """One halt: who raised it, when (UTC) and why; who lifted it, when and why, once lifted."""

    id: int
    reason: str
    raised_by: str
    raised_at: datetime
    lifted_by: str = ""
    lifted_at: datetime | None = None
    lift_reason: str = ""

    @classmethod
    def from_row(cls, row: HaltRow) -> Halt:
        return cls(
            id=row.id,
            reason=row.reason,
            raised_by=row.raised_by,
            raised_at=_utc(row.raised_at),
            lifted_by=row.lifted_by or "",
            lifted_at=_utc(row.lifted_at) if row.lifted_at is not None else None,
            lift_reason=row.lift_reason or "",
        )

    @property
    def describe(self) -> str:
        """`halted by <who> at <RFC 3339 UTC time>: <reason>`: every refusal says this."""
        at = self.raised_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"halted by {self.raised_by} at {at}: {self.reason}"


def _utc(at: datetime) -> datetime:
    """SQLite returns naive datetimes for `DateTime(timezone=True)`: they were stored as UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class HaltStore:
    """Reads the halt in force; raises and lifts halts inside a caller's transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def active(self) -> Halt | None:
        """The halt in force (the newest row not lifted), or None; one indexed read."""
        with Session(self.engine) as session:
            return self.active_in(session)

    def history(self, limit: int = 20) -> list[Halt]:
        """The last `limit` halts, newest first, lifted or not."""
        with Session(self.engine) as session:
            rows = session.scalars(select(HaltRow).order_by(HaltRow.id.desc()).limit(limit))
            return [Halt.from_row(row) for row in rows]

    @staticmethod
    def active_in(session: Session) -> Halt | None:
        """The halt in force as `session` sees it, or None."""
        row = session.scalars(
            select(HaltRow).where(HaltRow.lifted_at.is_(None)).order_by(HaltRow.id.desc())
        ).first()
        return Halt.from_row(row) if row is not None else None

    @classmethod
    def raise_in(cls, session: Session, *, reason: str, raised_by: str, at: datetime) -> Halt:
        """Add a halt in `session`'s transaction; `HaltConflict` while one is in force."""
        current = cls.active_in(session)
        if current is not None:
            raise HaltConflict(f"the factory is already {current.describe} (halt {current.id})")
        row = HaltRow(reason=reason, raised_by=raised_by, raised_at=at, lift_reason="")
        session.add(row)
        session.flush()
        return Halt.from_row(row)

    @classmethod
    def lift_in(cls, session: Session, *, reason: str, lifted_by: str, at: datetime) -> Halt:
        """Lift the halt in force (and any older one left unlifted) in `session`'s
        transaction; returns the lifted halt; `HaltConflict` when none is in force."""
        current = cls.active_in(session)
        if current is None:
            raise HaltConflict("the factory is not halted: there is nothing to lift")
        session.execute(
            update(HaltRow)
            .where(HaltRow.lifted_at.is_(None))
            .values(lifted_by=lifted_by, lifted_at=at, lift_reason=reason)
        )
        return Halt(
            id=current.id,
            reason=current.reason,
            raised_by=current.raised_by,
            raised_at=current.raised_at,
            lifted_by=lifted_by,
            lifted_at=_utc(at),
            lift_reason=reason,
        )
