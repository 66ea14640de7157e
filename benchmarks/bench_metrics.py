"""Benchmark of a `/metrics` scrape (issue 15 item 5: keep the scrape cheap) on a store that
holds many runs, SQLite or PostgreSQL.

Run with `python benchmarks/bench_metrics.py [--runs N] [--database-url URL]` (PostgreSQL: an
empty database, e.g. `postgresql+psycopg://postgres@127.0.0.1:5432/bench`). The store is
filled with bulk inserts: N runs of 12 transitions each, 6 check verdicts and one delivery
per run, one lease per run and an engine-spend audit event for every tenth run. Printed, each
the median of `--repeat` scrapes through the app's registry (`generate_latest`):

- the first scrape of a process (it reads the whole `run_states` history once),
- a warm scrape (the aggregates plus only the rows written since the last scrape),
- a warm scrape after 100 more transitions,

beside the baseline a collector without the incremental histogram would pay on every
scrape: reading every `run_states` row (`SELECT run_id, state, at FROM run_states`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, insert, select

from codefactory.audit.events import EngineSpend
from codefactory.audit.sql import SqlAuditLog
from codefactory.observability.metrics import StoreCollector
from codefactory.store.db import open_engine
from codefactory.store.models import CheckRunRow, RunRow, RunStateRow, TriggerRow
from codefactory.store.operations_tables import RunLeaseRow
from codefactory.store.trigger_tables import DeliveryRow

STATES = ["received", "authorized", "provisioned", "context_ready", "proposing", "verifying",
          "proposing", "verifying", "verified", "packaged", "in_review", "approved"]  # fmt: skip
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fill(engine: Engine, runs: int) -> None:
    """`runs` runs with their rows, in batches of 1,000 runs."""
    for start in range(0, runs, 1000):
        ids = [f"r-{n:08d}" for n in range(start, min(start + 1000, runs))]
        with engine.begin() as connection:
            connection.execute(insert(TriggerRow), [_trigger(i) for i in ids])
            connection.execute(insert(RunRow), [_run(i) for i in ids])
            connection.execute(insert(RunStateRow), [s for i in ids for s in _states(i)])
            connection.execute(insert(CheckRunRow), [c for i in ids for c in _checks(i)])
            connection.execute(insert(DeliveryRow), [_delivery(i) for i in ids])
            connection.execute(insert(RunLeaseRow), [_lease(i) for i in ids])
    audit = SqlAuditLog(engine)
    for n in range(0, runs, 10):
        audit.append(EngineSpend(actor="gateway", run_id=f"r-{n:08d}", at=T0, engine="cli:codex",
                                 requests=4, input_tokens=9000, output_tokens=800,
                                 cost_usd=0.02, estimated=False))  # fmt: skip


def _trigger(run_id: str) -> dict[str, object]:
    return {"id": f"t-{run_id}", "source": "cli", "kind": "lint", "external_id": run_id,
            "actor": "priya", "repository": "acme/payments", "title": "t", "body": "",
            "labels": [], "payload_digest": "sha256:0", "received_at": T0}  # fmt: skip


def _run(run_id: str) -> dict[str, object]:
    return {"id": run_id, "trigger_id": f"t-{run_id}", "kind": "lint",
            "repository": "acme/payments", "sponsor": "priya", "agent_id": "agent:x",
            "state": STATES[-1], "created_at": T0}  # fmt: skip


def _states(run_id: str) -> list[dict[str, object]]:
    return [{"run_id": run_id, "state": s, "reason": "", "at": T0 + timedelta(seconds=7 * k)}
            for k, s in enumerate(STATES)]  # fmt: skip


def _checks(run_id: str) -> list[dict[str, object]]:
    return [{"run_id": run_id, "round": 1 + k // 3, "check": c, "passed": k >= 3}
            for k, c in enumerate(["lint", "tests", "sast"] * 2)]  # fmt: skip


def _delivery(run_id: str) -> dict[str, object]:
    return {"source": "github", "delivery_id": run_id, "event": "issues", "status": "done",
            "run_id": run_id, "payload_digest": "d", "received_at": T0,
            "updated_at": T0}  # fmt: skip


def _lease(run_id: str) -> dict[str, object]:
    return {"run_id": run_id, "owner": "", "fence": 1, "acquired_at": T0,
            "heartbeat_at": T0, "expires_at": T0, "takeovers": 0}  # fmt: skip


def timed_ms(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'factory.db'}"
        engine = open_engine(url)
        fill(engine, args.runs)
        registry = CollectorRegistry()
        registry.register(StoreCollector(engine))
        first = timed_ms(lambda: generate_latest(registry))
        warm = statistics.median(
            timed_ms(lambda: generate_latest(registry)) for _ in range(args.repeat)
        )
        after: list[float] = []
        for round_number in range(args.repeat):
            with engine.begin() as connection:
                connection.execute(insert(RunStateRow), [
                    {"run_id": f"r-{n:08d}", "state": "handed_off", "reason": "",
                     "at": T0 + timedelta(days=1)}
                    for n in range(round_number * 100, round_number * 100 + 100)
                ])  # fmt: skip
            after.append(timed_ms(lambda: generate_latest(registry)))

        def read_history() -> None:
            with engine.connect() as connection:
                connection.execute(
                    select(RunStateRow.run_id, RunStateRow.state, RunStateRow.at)
                ).all()

        baseline = statistics.median(timed_ms(read_history) for _ in range(args.repeat))
        engine.dispose()
    print(f"{engine.dialect.name}, {args.runs} runs, {args.runs * len(STATES)} run_states rows")
    print(f"  first scrape of a process        {first:9.1f} ms")
    print(f"  warm scrape (median)             {warm:9.1f} ms")
    print(f"  scrape after 100 transitions     {statistics.median(after):9.1f} ms")
    print(f"  baseline: read every run_states  {baseline:9.1f} ms")


if __name__ == "__main__":
    main()
