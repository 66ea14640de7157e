"""The durable queue: the `deliveries` table, written before a sender is answered (a
repository of the store: intake writes it, `dispatch/` drains it).

A delivery row moves `received → queued → running → done` (with the Celery executor,
`queued → sent → running → done`: the table is the outbox the broker is fed from), or rests
`refused` or `ignored`. A delivery stored before its decision (`store.delivery_writer`)
carries its parsed trigger (`trigger_document`) and no run until a decision attaches one
(`attach`). Workers claim rows with a conditional update, so two workers (threads or
processes) never run the same delivery; rows left `received` or `running` by a stopped
process are queued again by `dispatch.sweeper` once `stale()`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from codefactory.domain import ChangeKind, TriggerEvent
from codefactory.store.trigger_tables import DeliveryRow

RECEIVED, QUEUED, RUNNING, DONE = "received", "queued", "running", "done"
REFUSED, IGNORED = "refused", "ignored"
SENT = "sent"
"""Published to the Celery broker (the table is the transactional outbox), not yet started."""
UNFINISHED = (RECEIVED, QUEUED, SENT, RUNNING)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class DeliveryFacts:
    """What is stored of every delivery: who sent which, what event, the body's digest."""

    source: str
    delivery_id: str
    event: str
    digest: str
    received_at: datetime


@dataclass(frozen=True, kw_only=True)
class QueuedDelivery:
    """A stored delivery as the queue sees it."""

    id: int
    source: str
    delivery_id: str
    event: str
    status: str
    run_id: str | None
    reason: str

    @classmethod
    def from_row(cls, row: DeliveryRow) -> QueuedDelivery:
        return cls(
            id=row.id,
            source=row.source,
            delivery_id=row.delivery_id,
            event=row.event,
            status=row.status,
            run_id=row.run_id,
            reason=row.reason,
        )


class AlreadyDecided(Exception):
    """The delivery already has its run (another process decided it first)."""

    def __init__(self, row_id: int) -> None:
        super().__init__(f"delivery {row_id} already has its run")
        self.row_id = row_id


_TRIGGER_FIELDS = tuple(field.name for field in fields(TriggerEvent))


def trigger_document(event: TriggerEvent) -> dict[str, Any]:
    """`event` as a JSON object (every field; `kind` its value, `received_at` ISO 8601),
    as an undecided delivery stores it."""
    document = {name: getattr(event, name) for name in _TRIGGER_FIELDS}
    document["kind"] = event.kind.value
    document["labels"] = list(event.labels)
    document["links"] = list(event.links)
    document["attributes"] = dict(event.attributes)
    document["received_at"] = event.received_at.isoformat()
    return document


def trigger_from_document(document: dict[str, Any]) -> TriggerEvent:
    """The `TriggerEvent` `trigger_document` wrote; raises KeyError, ValueError or
    TypeError for a document it did not write."""
    values = dict(document)
    values["kind"] = ChangeKind(values["kind"])
    values["labels"] = tuple(values["labels"])
    values["links"] = tuple(values["links"])
    values["received_at"] = datetime.fromisoformat(values["received_at"])
    return TriggerEvent(**values)


class DeliveryStored(Exception):
    """A delivery with this id, or this body, from this source is stored already: another
    process inserted it after this one looked (the database's unique keys refused the row)."""

    def __init__(self, source: str, delivery_id: str) -> None:
        super().__init__(f"delivery {delivery_id} of {source}, or its body, is stored already")


def _unique_violation(err: IntegrityError) -> bool:
    """Whether the database refused a row for a unique key (PostgreSQL's SQLSTATE 23505,
    SQLite's UNIQUE constraint), not another integrity rule."""
    return getattr(err.orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(
        err.orig
    )


class DeliveryQueue:
    """Reads and moves delivery rows; `add` writes inside the caller's transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def add(
        session: Session,
        facts: DeliveryFacts,
        *,
        status: str,
        run_id: str | None = None,
        reason: str = "",
    ) -> int:
        """Add a row in `session`'s transaction; `DeliveryStored` when the same delivery id or
        body from the same source is stored already (the transaction is then rolled back)."""
        row = DeliveryRow(
            source=facts.source,
            delivery_id=facts.delivery_id,
            event=facts.event,
            status=status,
            run_id=run_id,
            reason=reason,
            payload_digest=facts.digest,
            received_at=facts.received_at,
            updated_at=_now(),
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError as err:
            if not _unique_violation(err):  # a missing run, a NULL: not another copy
                raise
            raise DeliveryStored(facts.source, facts.delivery_id) from err
        return row.id

    @staticmethod
    def attach(
        session: Session, row_id: int, run_id: str, *, status: str, reason: str = ""
    ) -> None:
        """Give the undecided delivery `row_id` its run, in `session`'s transaction (whose
        run row must exist), and drop its stored trigger (the run's trigger holds it now);
        raises `AlreadyDecided` when the delivery has a run already."""
        result = session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == row_id, DeliveryRow.run_id.is_(None))
            .values(run_id=run_id, status=status, reason=reason, trigger=None, updated_at=_now())
        )
        if not cast(CursorResult[Any], result).rowcount:
            raise AlreadyDecided(row_id)

    def undecided(self, row_id: int) -> TriggerEvent | None:
        """The parsed trigger of the delivery `row_id` while it has no run; None once it has
        one (or was stored without a trigger)."""
        with Session(self.engine) as session:
            row = session.get(DeliveryRow, row_id)
            if row is None or row.run_id is not None or row.trigger is None:
                return None
            return trigger_from_document(row.trigger)

    def get(self, source: str, delivery_id: str) -> QueuedDelivery | None:
        with Session(self.engine) as session:
            row = session.scalars(
                select(DeliveryRow).where(
                    DeliveryRow.source == source, DeliveryRow.delivery_id == delivery_id
                )
            ).first()
            return QueuedDelivery.from_row(row) if row else None

    def get_by_id(self, row_id: int) -> QueuedDelivery | None:
        """The stored delivery with this row id, or None."""
        with Session(self.engine) as session:
            row = session.get(DeliveryRow, row_id)
            return QueuedDelivery.from_row(row) if row else None

    def get_by_digest(self, source: str, digest: str) -> QueuedDelivery | None:
        """The first stored delivery from `source` whose body has this digest, or None: a
        repeated body is one delivery whatever its delivery id."""
        with Session(self.engine) as session:
            row = session.scalars(
                select(DeliveryRow)
                .where(DeliveryRow.source == source, DeliveryRow.payload_digest == digest)
                .order_by(DeliveryRow.id)
                .limit(1)
            ).first()
            return QueuedDelivery.from_row(row) if row else None

    def mark(self, row_id: int, status: str, *, reason: str | None = None) -> None:
        values: dict[str, object] = {"status": status, "updated_at": _now()}
        if reason is not None:
            values["reason"] = reason
        with Session(self.engine) as session, session.begin():
            session.execute(update(DeliveryRow).where(DeliveryRow.id == row_id).values(**values))

    def claim(self) -> QueuedDelivery | None:
        """Take the oldest queued delivery for this worker; None when the queue is empty."""
        while True:
            with Session(self.engine) as session:
                row_id = session.scalars(
                    select(DeliveryRow.id)
                    .where(DeliveryRow.status == QUEUED)
                    .order_by(DeliveryRow.id)
                    .limit(1)
                ).first()
            if row_id is None:
                return None
            with Session(self.engine) as session, session.begin():
                result = session.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.id == row_id, DeliveryRow.status == QUEUED)
                    .values(status=RUNNING, updated_at=_now())
                )
                taken = cast(CursorResult[Any], result).rowcount
                if taken:
                    row = session.get(DeliveryRow, row_id)
                    assert row is not None
                    return QueuedDelivery.from_row(row)

    def unsent(self, *, limit: int = 100) -> list[QueuedDelivery]:
        """Queued deliveries not yet published to the broker, oldest first."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(DeliveryRow)
                .where(DeliveryRow.status == QUEUED)
                .order_by(DeliveryRow.id)
                .limit(limit)
            ).all()
            return [QueuedDelivery.from_row(row) for row in rows]

    def move(self, row_id: int, expected: tuple[str, ...], status: str) -> bool:
        """Move the row to `status` only if it is in one of `expected`; whether it moved."""
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == row_id, DeliveryRow.status.in_(expected))
                .values(status=status, updated_at=_now())
            )
            return bool(cast(CursorResult[Any], result).rowcount)

    def stale(self, *, older_than_s: float, limit: int = 100) -> list[QueuedDelivery]:
        """Unfinished deliveries (`received`, `queued`, `sent`, `running`) untouched for
        `older_than_s` seconds, oldest first: a stopped process's, or a lost message's."""
        cutoff = _now() - timedelta(seconds=older_than_s)
        with Session(self.engine) as session:
            rows = session.scalars(
                select(DeliveryRow)
                .where(DeliveryRow.status.in_(UNFINISHED), DeliveryRow.updated_at < cutoff)
                .order_by(DeliveryRow.id)
                .limit(limit)
            ).all()
            return [QueuedDelivery.from_row(row) for row in rows]

    def requeue(self, row_id: int, *, older_than_s: float) -> bool:
        """Queue a stale delivery again (see `stale`), only if no other process did since:
        the row must still be unfinished and untouched for `older_than_s` seconds."""
        cutoff = _now() - timedelta(seconds=older_than_s)
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.id == row_id,
                    DeliveryRow.status.in_(UNFINISHED),
                    DeliveryRow.updated_at < cutoff,
                )
                .values(status=QUEUED, updated_at=_now())
            )
            return bool(cast(CursorResult[Any], result).rowcount)

    def finish_run(self, run_id: str, reason: str) -> None:
        """Mark every unfinished delivery of the run `done` with `reason` (the run rests or
        ended, whichever worker drove it)."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.run_id == run_id, DeliveryRow.status.in_(UNFINISHED))
                .values(status=DONE, reason=reason, updated_at=_now())
            )

    def counts(self) -> dict[str, int]:
        """Deliveries per status."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
            ).all()
            return {status: count for status, count in rows}

    def search(self, *, limit: int = 100) -> list[QueuedDelivery]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(DeliveryRow).order_by(DeliveryRow.id.desc()).limit(limit)
            ).all()
            return [QueuedDelivery.from_row(row) for row in rows]
