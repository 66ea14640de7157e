"""Group commit for intake: many deliveries stored in one transaction, each sender answered
only once the commit that holds its delivery is durable.

Request threads hand a `NewDelivery` to `DeliveryWriter.write` and wait; one writer thread
takes whatever is waiting (up to `max_batch`), looks up earlier copies (the same delivery id,
or the same body, from the same source: in the table or earlier in the batch), inserts the
rest and their audit events, commits once (SQLite `synchronous=FULL` fsyncs the WAL;
PostgreSQL's commit is durable), then answers every waiter. While one batch commits the next
one gathers, so a busy intake commits rarely and an idle one at once. A batch that fails is
written again one delivery per transaction, so a bad delivery fails only itself; a delivery
another process stored meanwhile is answered as that copy.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from codefactory.domain import AuditEvent, TriggerEvent
from codefactory.store.deliveries import DeliveryFacts, QueuedDelivery, trigger_document
from codefactory.store.port import RunRepository
from codefactory.store.trigger_tables import DeliveryRow

log = logging.getLogger("codefactory.intake")


@dataclass(frozen=True, kw_only=True)
class NewDelivery:
    """A delivery to store: its facts, the status it is stored with, the parsed trigger an
    undecided delivery keeps for its decision, and an audit event written with it."""

    facts: DeliveryFacts
    status: str
    trigger: TriggerEvent | None = None
    reason: str = ""
    audit: AuditEvent | None = None


@dataclass(frozen=True, kw_only=True)
class Written:
    """What became of a `NewDelivery`: the stored row, and whether this write stored it
    (`first`) or an earlier copy with the same id or body was found (`row` is that copy)."""

    row: QueuedDelivery
    first: bool


class WriterClosed(RuntimeError):
    """The writer was closed: the delivery was not stored."""


_Waiting = tuple[NewDelivery, "Future[Written]"]


class DeliveryWriter:
    """One thread writing deliveries in batches for the request threads that wait on them."""

    def __init__(self, store: RunRepository, *, max_batch: int = 256, idle_s: float = 30.0) -> None:
        self.store = store
        self.max_batch = max_batch
        self.idle_s = idle_s
        """The thread ends after this many seconds without a delivery (the next starts one)."""
        self._waiting: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._closed = False

    def write(self, delivery: NewDelivery, *, timeout_s: float = 60.0) -> Written:
        """Store `delivery` (or find its earlier copy) and return once that is durable;
        raises what the store raised (`StoreUnavailable`, …), `WriterClosed`, or
        `TimeoutError` after `timeout_s` seconds."""
        return self.submit(delivery).result(timeout_s)

    def submit(self, delivery: NewDelivery) -> Future[Written]:
        """`write` without waiting: the future holds the `Written` once the commit holding
        the delivery is durable, or what the store raised (for `asyncio.wrap_future`);
        raises `WriterClosed`."""
        future: Future[Written] = Future()
        with self._guard:
            if self._closed:
                raise WriterClosed("intake is closed: the delivery was not stored")
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="delivery-writer", daemon=True
                )
                self._thread.start()
            self._waiting.put((delivery, future))
        return future

    async def wait(self, delivery: NewDelivery, *, timeout_s: float = 60.0) -> Written:
        """`write` for an event loop: awaits the commit without holding a thread; raises as
        `write` does (`TimeoutError` after `timeout_s` seconds). A waiter cancelled before
        the writer took its delivery leaves it unstored; after, stored."""
        return await asyncio.wait_for(asyncio.wrap_future(self.submit(delivery)), timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is waiting, then stop the thread; later writes raise `WriterClosed`."""
        with self._guard:
            self._closed = True
            thread, self._thread = self._thread, None
            self._waiting.put(None)
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._waiting.get(timeout=self.idle_s)
            except queue.Empty:
                with self._guard:  # `submit` queues under it: nothing can slip in now
                    if self._waiting.empty():
                        self._thread = None
                        return
                continue
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._waiting.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            # A request that went away before its delivery was taken (its future cancelled:
            # `asyncio.wrap_future` cancels it with the task) was answered nothing: not stored.
            taken = [item for item in batch if item[1].set_running_or_notify_cancel()]
            try:
                self._write_batch(taken)
            except BaseException as err:  # noqa: BLE001 - the thread outlives any one batch
                log.exception("writing a batch of %d deliveries failed", len(taken))
                for _, future in taken:
                    _settle(future, error=err)

    def _write_batch(self, batch: Sequence[_Waiting]) -> None:
        if not batch:
            return
        try:
            results = self._store([delivery for delivery, _ in batch])
        except Exception:  # noqa: BLE001 - written again one by one, each failing alone
            if len(batch) > 1:
                log.warning("a batch of %d deliveries failed; writing them one by one", len(batch))
            for waiting in batch:
                self._write_alone(waiting)
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)

    def _write_alone(self, waiting: _Waiting) -> None:
        delivery, future = waiting
        try:
            try:
                result = self._store([delivery])[0]
            except IntegrityError as err:  # stored meanwhile by another process: that copy
                found = self._earlier([delivery])
                if not found:
                    raise err from None
                result = Written(row=next(iter(found.values())), first=False)
        except BaseException as err:  # noqa: BLE001 - handed to the waiting request
            _settle(future, error=err)
        else:
            _settle(future, result=result)

    def _store(self, deliveries: Sequence[NewDelivery]) -> list[Written]:
        """Write `deliveries` in one transaction; their results in the same order."""
        with self.store.atomic() as tx:
            earlier = _earlier_copies(tx.session, deliveries)
            results: list[Written | int] = []
            new: list[NewDelivery] = []
            seen: dict[tuple[str, str], int] = {}
            for delivery in deliveries:
                facts = delivery.facts
                keys = _keys(facts)
                copy = next((earlier[key] for key in keys if key in earlier), None)
                if copy is not None:
                    results.append(Written(row=copy, first=False))
                    continue
                position = next((seen[key] for key in keys if key in seen), None)
                if position is not None:  # an earlier one of this batch: its row, below
                    results.append(-1 - position)
                    continue
                for key in keys:
                    seen[key] = len(new)
                results.append(len(new))
                new.append(delivery)
            rows = _insert(tx.session, new)
            for delivery in new:
                if delivery.audit is not None:
                    tx.append(delivery.audit)
        return [_result(entry, rows) for entry in results]

    def _earlier(self, deliveries: Sequence[NewDelivery]) -> dict[tuple[str, str], QueuedDelivery]:
        with self.store.atomic() as tx:  # rare: after a race with another process
            return _earlier_copies(tx.session, deliveries)


def _settle(
    future: Future[Written], *, result: Written | None = None, error: BaseException | None = None
) -> None:
    """Answer a waiter once: a future already answered (by a failure path) is left alone."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


def _keys(facts: DeliveryFacts) -> tuple[tuple[str, str], tuple[str, str]]:
    """The two ways a delivery repeats another: its id, its body (`sha256:` digest)."""
    return (facts.source, "id:" + facts.delivery_id), (facts.source, "body:" + facts.digest)


DELIVERIES = cast(Table, DeliveryRow.__table__)
_SOURCES = DELIVERIES.c.source.in_(bindparam("sources", expanding=True))
_COPIES = union_all(
    select(DELIVERIES).where(
        _SOURCES, DELIVERIES.c.delivery_id.in_(bindparam("ids", expanding=True))
    ),
    select(DELIVERIES).where(
        _SOURCES, DELIVERIES.c.payload_digest.in_(bindparam("digests", expanding=True))
    ),
)
"""Stored deliveries of some sources with some ids or bodies: one statement, compiled once,
each half served by its index (`source, delivery_id`; `source, payload_digest`)."""
_INSERT = DELIVERIES.insert().returning(
    DELIVERIES.c.id, DELIVERIES.c.source, DELIVERIES.c.delivery_id
)
"""Rows come back in any order (one multi-row statement, not one per row): matched by id."""


def _earlier_copies(
    session: Session, deliveries: Iterable[NewDelivery]
) -> dict[tuple[str, str], QueuedDelivery]:
    """Stored deliveries with the id or body of one of `deliveries` (the first stored per
    body), by `_keys`."""
    facts = [delivery.facts for delivery in deliveries]
    keys = {key for f in facts for key in _keys(f)}
    rows = session.connection().execute(
        _COPIES,
        {
            "sources": sorted({f.source for f in facts}),
            "ids": [f.delivery_id for f in facts],
            "digests": [f.digest for f in facts],
        },
    )
    found: dict[tuple[str, str], QueuedDelivery] = {}
    for row in sorted(rows, key=lambda row: row.id):  # the first stored wins
        stored = QueuedDelivery(id=row.id, source=row.source, delivery_id=row.delivery_id,
                                event=row.event, status=row.status, run_id=row.run_id,
                                reason=row.reason)  # fmt: skip
        for key in (
            (row.source, "id:" + row.delivery_id),
            (row.source, "body:" + row.payload_digest),
        ):
            if key in keys:
                found.setdefault(key, stored)
    return found


def _insert(session: Session, deliveries: Sequence[NewDelivery]) -> list[QueuedDelivery]:
    """Insert `deliveries` (one statement); their stored rows in the same order."""
    if not deliveries:
        return []
    now = datetime.now(UTC)
    values: list[dict[str, Any]] = [
        {
            "source": d.facts.source,
            "delivery_id": d.facts.delivery_id,
            "event": d.facts.event,
            "status": d.status,
            "run_id": None,
            "reason": d.reason,
            "payload_digest": d.facts.digest,
            "received_at": d.facts.received_at,
            "updated_at": now,
            "trigger": trigger_document(d.trigger) if d.trigger is not None else None,
        }
        for d in deliveries
    ]
    inserted = session.connection().execute(_INSERT, values).all()
    by_delivery = {(source, delivery_id): row_id for row_id, source, delivery_id in inserted}
    ids = [by_delivery[d.facts.source, d.facts.delivery_id] for d in deliveries]
    return [
        QueuedDelivery(
            id=row_id,
            source=d.facts.source,
            delivery_id=d.facts.delivery_id,
            event=d.facts.event,
            status=d.status,
            run_id=None,
            reason=d.reason,
        )
        for row_id, d in zip(ids, deliveries, strict=True)
    ]


def _result(entry: Written | int, rows: Sequence[QueuedDelivery]) -> Written:
    if isinstance(entry, Written):
        return entry
    if entry >= 0:
        return Written(row=rows[entry], first=True)
    return Written(row=rows[-1 - entry], first=False)
