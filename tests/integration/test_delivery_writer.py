"""Intake's group commit (store/delivery_writer.py) over the factory's real store (SQLite, or
PostgreSQL under CODEFACTORY_TEST_DATABASE=postgresql): every delivery durable before its
writer returns, many per commit, repeats found in the table and in the batch, a bad
delivery failing alone."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from codefactory.audit.events import WebhookIgnored
from codefactory.config import Settings
from codefactory.domain import ChangeKind, TriggerEvent
from codefactory.factory import Factory, build_factory
from codefactory.store.deliveries import (
    IGNORED,
    QUEUED,
    DeliveryFacts,
    DeliveryQueue,
    DeliveryStored,
    trigger_from_document,
)
from codefactory.store.delivery_writer import DeliveryWriter, NewDelivery, WriterClosed
from codefactory.store.trigger_tables import DeliveryRow


@pytest.fixture
def factory(tmp_path: Path) -> Factory:
    return build_factory(Settings(data_dir=tmp_path / "data"))


def delivery(number: int, *, body: str = "", status: str = QUEUED) -> NewDelivery:
    digest = "sha256:" + hashlib.sha256((body or f"body {number}").encode()).hexdigest()
    facts = DeliveryFacts(source="webhook", delivery_id=f"d-{number}", event="change.requested",
                          digest=digest, received_at=datetime.now(UTC))  # fmt: skip
    trigger = TriggerEvent(source="webhook", kind=ChangeKind.FIX_LINT, external_id=f"T-{number}",
                           actor="priya.shah", repository="sample-service",
                           title=f"Lint sweep {number}", body="ruff findings\x00 and more",
                           labels=("lint",), received_at=facts.received_at,
                           payload_digest=digest, delivery_id=facts.delivery_id,
                           attributes={"status": "open"})  # fmt: skip
    return NewDelivery(facts=facts, status=status, trigger=trigger)


def stored(factory: Factory) -> list[DeliveryRow]:
    with Session(factory.store.engine) as session:
        return list(session.scalars(select(DeliveryRow).order_by(DeliveryRow.id)))


def test_concurrent_deliveries_share_commits_and_each_is_stored_before_its_answer(
    factory: Factory,
) -> None:
    writer = DeliveryWriter(factory.store)
    commits: list[int] = []
    event.listen(factory.store.engine, "commit", lambda _: commits.append(1))

    def write(number: int) -> tuple[int, set[str]]:
        written = writer.write(delivery(number))
        # durable before the answer: another connection reads it at once
        return written.row.id, {row.delivery_id for row in stored(factory)}

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(write, range(200)))
    writer.close()
    assert all(f"d-{n}" in seen for n, (_, seen) in enumerate(answers))
    rows = stored(factory)
    assert sorted(row.delivery_id for row in rows) == sorted(f"d-{n}" for n in range(200))
    assert {row_id for row_id, _ in answers} == {row.id for row in rows}
    assert len(commits) < 200, "no two deliveries shared a commit"
    first = next(row for row in rows if row.delivery_id == "d-7")
    assert first.status == QUEUED and first.run_id is None and first.trigger is not None
    kept = trigger_from_document(first.trigger)
    assert kept.body == "ruff findings\x00 and more"  # a JSON escape: kept on PostgreSQL too
    assert (kept.title, kept.kind, kept.labels, kept.attributes) == (
        "Lint sweep 7",
        ChangeKind.FIX_LINT,
        ("lint",),
        {"status": "open"},
    )


def test_repeats_by_id_or_body_are_answered_with_the_first_copy(factory: Factory) -> None:
    writer = DeliveryWriter(factory.store)
    first = writer.write(delivery(1, body="same"))
    again = writer.write(delivery(1, body="other"))  # the same id
    replayed = writer.write(delivery(2, body="same"))  # the same signed body, another id
    assert first.first and not again.first and not replayed.first
    assert again.row.id == replayed.row.id == first.row.id
    assert [row.delivery_id for row in stored(factory)] == ["d-1"]


def test_a_batch_stores_each_delivery_once_and_audits_the_ignored(factory: Factory) -> None:
    writer = DeliveryWriter(factory.store)
    ignored = NewDelivery(
        facts=delivery(30).facts,
        status=IGNORED,
        reason="not an event that starts work",
        audit=WebhookIgnored(actor="intake:webhook", source="webhook", delivery_id="d-30",
                             event="change.requested", reason="not an event that starts work"),
    )  # fmt: skip
    batch = [delivery(10), delivery(10), delivery(11, body="b"), delivery(12, body="b"), ignored]
    with hold_writes(factory):
        blocker = writer.submit(delivery(9))  # the batch that waits on the lock
        futures = [writer.submit(item) for item in batch]  # the next batch, whole
    assert blocker.result(30).first
    results = [future.result(30) for future in futures]
    assert [r.first for r in results] == [True, False, True, False, True]
    assert results[1].row.id == results[0].row.id and results[3].row.id == results[2].row.id
    assert [row.delivery_id for row in stored(factory)] == ["d-9", "d-10", "d-11", "d-30"]
    names = [record.name for record in factory.audit.events()]
    assert names.count("webhook-ignored") == 1 and factory.audit.verify().ok


def test_a_bad_delivery_fails_alone_and_the_rest_of_its_batch_is_stored(
    factory: Factory,
) -> None:
    writer = DeliveryWriter(factory.store)
    bad: Any = delivery(21, status=None)  # type: ignore[arg-type]  # NOT NULL refuses it
    with hold_writes(factory):
        futures = [writer.submit(delivery(20))]  # the batch that waits on the lock
        futures += [writer.submit(item) for item in (delivery(22), bad, delivery(23))]
    assert futures[0].result(30).first and futures[1].result(30).first
    assert futures[3].result(30).first
    with pytest.raises(Exception, match="(?i)null"):
        futures[2].result(30)
    assert [row.delivery_id for row in stored(factory)] == ["d-20", "d-22", "d-23"]


def test_a_closed_writer_stores_what_waits_and_refuses_the_rest(factory: Factory) -> None:
    writer = DeliveryWriter(factory.store)
    with hold_writes(factory):
        waiting = writer.submit(delivery(40))
        closing = threading.Thread(target=writer.close)
        closing.start()
    closing.join(30)
    assert waiting.result(30).first
    with pytest.raises(WriterClosed):
        writer.write(delivery(41))
    assert [row.delivery_id for row in stored(factory)] == ["d-40"]


class hold_writes:  # noqa: N801 - used as a context manager, read as a phrase
    """Hold the store's write lock (the audit append lock) for the `with` block, so the
    writer's next batch gathers everything submitted meanwhile."""

    def __init__(self, factory: Factory) -> None:
        self.factory = factory
        self._held = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        with self.factory.store.atomic():
            self._held.set()
            self._release.wait(30)

    def __enter__(self) -> None:
        self._thread.start()
        assert self._held.wait(30)

    def __exit__(self, *_: object) -> None:
        self._release.set()  # every submit of the block is queued by now
        self._thread.join(30)


def test_a_waiter_gone_before_its_delivery_was_taken_leaves_it_unstored_and_the_writer_alive(
    factory: Factory,
) -> None:
    writer = DeliveryWriter(factory.store)
    with hold_writes(factory):
        taken = writer.submit(delivery(50))  # taken at once, waits on the lock
        while not taken.running():  # taken: what is submitted now waits for the next batch
            time.sleep(0.01)
        gone = writer.submit(delivery(51))
        assert gone.cancel()  # as asyncio.wrap_future does when the request's task ends
        timed_out = asyncio.run(_gave_up(writer, delivery(52)))
    assert taken.result(30).first and timed_out
    assert writer.write(delivery(53)).first  # the thread lives on
    assert [row.delivery_id for row in stored(factory)] == ["d-50", "d-53"]


async def _gave_up(writer: DeliveryWriter, new: NewDelivery) -> bool:
    try:
        await writer.wait(new, timeout_s=0.05)
    except TimeoutError:
        return True
    return False


def test_an_idle_writer_ends_its_thread_and_starts_one_for_the_next_delivery(
    factory: Factory,
) -> None:
    before = set(threading.enumerate())
    writer = DeliveryWriter(factory.store, idle_s=0.1)
    assert writer.write(delivery(60)).first
    started = [t for t in set(threading.enumerate()) - before if t.name == "delivery-writer"]
    assert len(started) == 1
    started[0].join(5)
    assert not started[0].is_alive()  # no thread kept for an intake that receives nothing
    assert writer.write(delivery(61)).first
    assert [row.delivery_id for row in stored(factory)] == ["d-60", "d-61"]


def test_the_database_itself_keeps_one_delivery_per_source_and_body(factory: Factory) -> None:
    """Every store write runs under the audit log's append lock, so a writer's lookup of
    copies and its insert see every other process's commit; a path that looks outside that
    lock (a forge review, a ServiceNow notice) still cannot store a body twice: the database
    refuses the second row (migration 0012), as it refuses a repeated delivery id."""
    first = DeliveryWriter(factory.store).write(delivery(50, body="once"))
    assert first.first
    for copy in (delivery(51, body="once"), delivery(50, body="another body")):
        with pytest.raises(DeliveryStored), factory.store.atomic() as tx:
            DeliveryQueue.add(tx.session, copy.facts, status=QUEUED)
    assert [row.delivery_id for row in stored(factory)] == ["d-50"]
    with pytest.raises(IntegrityError), factory.store.atomic() as tx:  # not a copy: as raised
        DeliveryQueue.add(tx.session, delivery(53).facts, status=QUEUED, run_id="no-such-run")
