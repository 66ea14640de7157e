"""The metrics collector over a real store (SQLite, or PostgreSQL under
CODEFACTORY_TEST_DATABASE=postgresql): rows written with known times, figures read back
through the Prometheus text format."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import Connection, Engine, create_engine, insert

from codefactory.audit.events import EngineSpend
from codefactory.audit.sql import SqlAuditLog
from codefactory.config import Settings
from codefactory.domain import UnknownEvent
from codefactory.observability.exposition import MetricsEndpoint
from codefactory.observability.metrics import StoreCollector
from codefactory.observability.settings import ObservabilitySettings
from codefactory.observability.settled import SettledRows
from codefactory.observability.step_durations import StepDurations
from codefactory.store.db import open_engine
from codefactory.store.models import CheckRunRow, RunRow, RunStateRow, TriggerRow
from codefactory.store.operations_tables import RunLeaseRow
from codefactory.store.trigger_tables import DeliveryRow

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    database = open_engine(Settings(data_dir=tmp_path).database_url)
    yield database
    database.dispose()


def add_run(engine: Engine, run_id: str, steps: list[tuple[str, float]]) -> None:
    """A run whose `run_states` rows enter each state `seconds` after T0."""
    with engine.begin() as connection:
        connection.execute(
            insert(TriggerRow).values(
                id=f"t-{run_id}", source="cli", kind="lint", external_id=run_id, actor="priya",
                repository="sample-service", title="t", body="", labels=[],
                payload_digest="sha256:0", received_at=T0,
            )
        )  # fmt: skip
        connection.execute(
            insert(RunRow).values(
                id=run_id, trigger_id=f"t-{run_id}", kind="lint", repository="sample-service",
                sponsor="priya", agent_id="agent:x", state=steps[-1][0], created_at=T0,
            )
        )  # fmt: skip
        add_steps(connection, run_id, steps)


def add_steps(connection: Connection, run_id: str, steps: list[tuple[str, float]]) -> None:
    rows = [
        {"run_id": run_id, "state": state, "reason": "", "at": T0 + timedelta(seconds=s)}
        for state, s in steps
    ]
    connection.execute(insert(RunStateRow), rows)


def add_row(engine: Engine, row_id: int, run_id: str, state: str, seconds: float) -> None:
    """One `run_states` row with the id the database would have handed out."""
    with engine.begin() as connection:
        at = T0 + timedelta(seconds=seconds)
        connection.execute(
            insert(RunStateRow).values(id=row_id, run_id=run_id, state=state, reason="", at=at)
        )


def scrape(registry: CollectorRegistry) -> dict[str, list[Sample]]:
    text = generate_latest(registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    (found,) = [s.value for s in samples if s.name == name and s.labels == labels]
    return found


def test_runs_verdicts_queue_takeovers_and_spend_are_read_from_the_tables(engine: Engine) -> None:
    add_run(engine, "r-a", [("received", 0), ("authorized", 1), ("failed", 2)])
    add_run(engine, "r-b", [("received", 0), ("authorized", 1)])
    add_run(engine, "r-c", [("received", 0), ("refused", 1)])
    with engine.begin() as connection:
        connection.execute(
            insert(CheckRunRow),
            [
                {"run_id": "r-a", "round": 1, "check": "lint", "passed": False},
                {"run_id": "r-a", "round": 2, "check": "lint", "passed": False},
                {"run_id": "r-a", "round": 1, "check": "tests", "passed": True},
                {"run_id": "r-b", "round": 1, "check": "lint", "passed": True},
            ],
        )
        delivery = {"source": "github", "event": "issues", "received_at": T0, "updated_at": T0}
        connection.execute(
            insert(DeliveryRow),
            [  # one body each: a body is stored once per source
                {**delivery, "delivery_id": "1", "payload_digest": "d1", "status": "queued"},
                {**delivery, "delivery_id": "2", "payload_digest": "d2", "status": "queued"},
                {**delivery, "delivery_id": "3", "payload_digest": "d3", "status": "received"},
                {**delivery, "delivery_id": "4", "payload_digest": "d4", "status": "done"},
            ],
        )
        lease = {"owner": "w", "fence": 1, "acquired_at": T0, "heartbeat_at": T0,
                 "expires_at": T0}  # fmt: skip
        connection.execute(
            insert(RunLeaseRow),
            [
                {**lease, "run_id": "r-a", "takeovers": 2},
                {**lease, "run_id": "r-b", "takeovers": 1},
            ],
        )
    audit = SqlAuditLog(engine)
    for run_id, engine_name, cost, tokens in [
        ("r-a", "codex", 0.25, 1000), ("r-b", "codex", 0.5, 3000), ("r-c", "aider", 0.125, 10)
    ]:  # fmt: skip
        spent = {"engine": engine_name, "requests": 2, "input_tokens": tokens,
                 "output_tokens": tokens // 10, "cost_usd": cost, "estimated": False}  # fmt: skip
        audit.append(EngineSpend(actor="gateway", run_id=run_id, at=T0, **spent))
    audit.append(UnknownEvent(kind="run-created", actor="factory", run_id="r-a", at=T0))
    registry = CollectorRegistry()
    registry.register(StoreCollector(engine))
    got = scrape(registry)

    runs = got["codefactory_runs"]
    assert value(runs, "codefactory_runs", state="failed") == 1
    assert value(runs, "codefactory_runs", state="authorized") == 1
    assert value(runs, "codefactory_runs", state="in_review") == 0  # every state is listed
    verdicts = got["codefactory_gate_verdicts"]
    name = "codefactory_gate_verdicts_total"
    assert value(verdicts, name, check="lint", verdict="fail") == 2
    assert value(verdicts, name, check="lint", verdict="pass") == 1
    assert value(verdicts, name, check="tests", verdict="pass") == 1
    queue = got["codefactory_queue_depth"]
    assert value(queue, "codefactory_queue_depth", status="queued") == 2
    assert value(queue, "codefactory_queue_depth", status="received") == 1
    takeovers = got["codefactory_lease_takeovers"]
    assert value(takeovers, "codefactory_lease_takeovers_total") == 3
    cost = got["codefactory_engine_cost_usd"]
    assert value(cost, "codefactory_engine_cost_usd_total", engine="codex") == 0.75
    assert value(cost, "codefactory_engine_cost_usd_total", engine="aider") == 0.125
    tokens = got["codefactory_engine_tokens"]
    assert (
        value(tokens, "codefactory_engine_tokens_total", engine="codex", direction="input") == 4000
    )
    assert (
        value(tokens, "codefactory_engine_tokens_total", engine="codex", direction="output") == 400
    )
    requests = got["codefactory_engine_requests"]
    assert value(requests, "codefactory_engine_requests_total", engine="aider") == 2

    # later events add to the totals already read (only the new rows are read)
    audit.append(UnknownEvent(kind="engine-spend", actor="gateway", run_id="r-b",
                            payload={"engine": "aider", "cost_usd": 1.0}, at=T0))  # fmt: skip
    again = scrape(registry)["codefactory_engine_cost_usd"]
    assert value(again, "codefactory_engine_cost_usd_total", engine="aider") == 1.125
    assert value(again, "codefactory_engine_cost_usd_total", engine="codex") == 0.75


def test_step_durations_come_from_consecutive_rows_of_each_run(engine: Engine) -> None:
    add_run(engine, "r-a", [("received", 0), ("authorized", 2), ("provisioned", 12),
                            ("failed", 12.5)])  # fmt: skip
    add_run(engine, "r-b", [("received", 0), ("authorized", 100)])
    registry = CollectorRegistry()
    registry.register(StoreCollector(engine))
    steps = scrape(registry)["codefactory_step_duration_seconds"]
    bucket = "codefactory_step_duration_seconds_bucket"

    def count(state: str, le: str) -> float:
        return value(steps, bucket, state=state, le=le)

    assert value(steps, "codefactory_step_duration_seconds_count", state="received") == 2
    assert value(steps, "codefactory_step_duration_seconds_sum", state="received") == 102.0
    assert (count("received", "1.0"), count("received", "5.0"), count("received", "60.0"),
            count("received", "120.0"), count("received", "+Inf")) == (0, 1, 1, 2, 2)  # fmt: skip
    assert value(steps, "codefactory_step_duration_seconds_sum", state="authorized") == 10.0
    assert value(steps, "codefactory_step_duration_seconds_sum", state="provisioned") == 0.5
    assert not [s for s in steps if s.labels.get("state") == "failed"]  # an end, not a step

    with engine.begin() as connection:  # r-b's authorized step completes
        add_steps(connection, "r-b", [("provisioned", 160)])
    steps = scrape(registry)["codefactory_step_duration_seconds"]
    assert value(steps, "codefactory_step_duration_seconds_count", state="authorized") == 2
    assert value(steps, "codefactory_step_duration_seconds_sum", state="authorized") == 70.0
    assert value(steps, "codefactory_step_duration_seconds_count", state="received") == 2


def test_a_row_committed_below_ids_already_read_is_counted_until_it_settles(
    engine: Engine,
) -> None:
    """PostgreSQL hands out ids before commit: id 11 may be visible before id 10 is."""
    add_run(engine, "r-x", [("received", 0)])
    add_run(engine, "r-y", [("received", 0)])
    add_row(engine, 11, "r-y", "authorized", 3)
    clock = [0.0]
    rows = SettledRows(
        RunStateRow.id,
        [RunStateRow.run_id, RunStateRow.state, RunStateRow.at],
        settle_s=300,
        clock=lambda: clock[0],
    )
    durations = StepDurations(rows=rows)

    def advance(at: float) -> None:
        clock[0] = at
        with engine.connect() as connection:
            durations.advance(connection)

    advance(0)
    add_row(engine, 10, "r-x", "authorized", 2)  # the earlier id commits late
    advance(10)
    advance(20)  # looked for again while unsettled, counted once
    received = durations.histograms["received"]
    assert sum(received.counts) == 2 and received.total_s == 5.0
    # 300 s after an id was first skipped, it is no longer looked for
    advance(400)
    add_row(engine, 5, "r-x", "provisioned", 4)
    advance(401)
    assert "authorized" not in durations.histograms
    add_row(engine, 12, "r-x", "provisioned", 6)
    advance(402)
    assert durations.histograms["authorized"].total_s == 4.0


def test_a_store_that_cannot_be_read_answers_503_and_logs_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    answer = MetricsEndpoint(engine, ObservabilitySettings()).scrape()
    assert answer.status_code == 503
    assert bytes(answer.body) == (
        b"the store cannot be read (OperationalError); see the factory's log\n"
    )
    (logged,) = [r.getMessage() for r in caplog.records if "/metrics" in r.getMessage()]
    assert "the store cannot be read" in logged and "127.0.0.1" in logged


def test_a_gap_wider_than_the_holes_watched_is_a_jump_not_rows_in_flight(engine: Engine) -> None:
    add_run(engine, "r-x", [("received", 0)])  # id 1
    add_row(engine, 50, "r-x", "authorized", 1)  # 48 ids skipped
    add_row(engine, 60, "r-x", "provisioned", 3)  # 9 more
    rows = SettledRows(RunStateRow.id, [RunStateRow.state], max_holes=20)
    with engine.connect() as connection:
        assert [row[0] for row in rows.advance(connection)] == [1, 50, 60]
    add_row(engine, 30, "r-x", "context_ready", 4)  # in the wide gap: not watched
    add_row(engine, 55, "r-x", "proposing", 5)  # in the narrow one: watched
    with engine.connect() as connection:
        assert rows.advance(connection) == [(55, "proposing")]
        assert rows.advance(connection) == []
