"""Prometheus metrics of the factory, read from the store at scrape time.

Runs execute in many processes (`serve`'s workers, `worker` processes on other machines)
that share one database, so no process counts anything in memory for Prometheus: each scrape
asks the store, the single truth. Gauges are counts of rows now (`GROUP BY`); counters and
the histogram are sums over tables that only grow, which Prometheus' counter semantics allow
(every process serving `/metrics` reports the same value); those are kept in memory and each
scrape reads only the rows added since the last one (`settled.py`). Names follow Prometheus' naming
conventions (base units: seconds, USD; `_total` for counters).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, func, select

from codefactory.domain import RunState
from codefactory.observability.engine_spend import EngineSpend
from codefactory.observability.gate_verdicts import GateVerdicts
from codefactory.observability.step_durations import StepDurations
from codefactory.store.models import RunRow
from codefactory.store.operations_tables import RunLeaseRow
from codefactory.store.trigger_tables import DeliveryRow

WAITING = ("received", "queued")
"""Delivery statuses that count as the intake queue's depth."""


def _gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _counter(name: str, documentation: str, *labels: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, labels=list(labels))


@dataclass
class Families:
    """The metric families of one scrape, in exposition order."""

    runs: GaugeMetricFamily = field(
        default_factory=lambda: _gauge("codefactory_runs", "Runs now in each state.", "state")
    )
    steps: HistogramMetricFamily = field(
        default_factory=lambda: HistogramMetricFamily(
            "codefactory_step_duration_seconds",
            "Seconds runs stayed in a state before their next transition (completed steps).",
            labels=["state"],
        )
    )
    verdicts: CounterMetricFamily = field(
        default_factory=lambda: _counter(
            "codefactory_gate_verdicts_total",
            "Verify gate verdicts, one per check and round.",
            "check",
            "verdict",
        )
    )
    cost: CounterMetricFamily = field(
        default_factory=lambda: _counter(
            "codefactory_engine_cost_usd_total", "USD the model gateway counted.", "engine"
        )
    )
    tokens: CounterMetricFamily = field(
        default_factory=lambda: _counter(
            "codefactory_engine_tokens_total",
            "Model tokens the gateway counted, by direction (input, output).",
            "engine",
            "direction",
        )
    )
    requests: CounterMetricFamily = field(
        default_factory=lambda: _counter(
            "codefactory_engine_requests_total", "Model requests the gateway passed.", "engine"
        )
    )
    queue: GaugeMetricFamily = field(
        default_factory=lambda: _gauge(
            "codefactory_queue_depth",
            "Deliveries waiting: stored, not yet decided (received), or for a worker (queued).",
            "status",
        )
    )
    takeovers: CounterMetricFamily = field(
        default_factory=lambda: _counter(
            "codefactory_lease_takeovers_total",
            "Runs taken over from a worker whose lease had expired.",
        )
    )

    def all(self) -> Iterator[Metric]:
        return iter(list(vars(self).values()))


class StoreCollector(Collector):
    """A `prometheus_client` collector over one store's tables (docs/operations.md lists
    the metrics). Thread-safe: concurrent scrapes take turns."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._steps = StepDurations()
        self._verdicts = GateVerdicts()
        self._spend = EngineSpend()

    def describe(self) -> Iterator[Metric]:
        """The metric families without samples (registering reads nothing)."""
        return Families().all()

    def collect(self) -> Iterator[Metric]:
        """Every family with its samples, read in one connection."""
        families = Families()
        with self._lock, self._engine.connect() as connection:
            _add_current(families, connection)
            self._steps.advance(connection)
            self._verdicts.advance(connection)
            self._spend.advance(connection)
        self._add_steps(families.steps)
        for (check, verdict), count in sorted(self._verdicts.counts.items()):
            families.verdicts.add_metric([check, verdict], count)
        self._add_spend(families)
        return families.all()

    def _add_steps(self, family: HistogramMetricFamily) -> None:
        bounds = self._steps.bounds
        for state, histogram in sorted(self._steps.histograms.items()):
            family.add_metric([state], histogram.cumulative(bounds), sum_value=histogram.total_s)

    def _add_spend(self, families: Families) -> None:
        for engine, totals in sorted(self._spend.engines.items()):
            families.cost.add_metric([engine], totals.cost_usd)
            families.tokens.add_metric([engine, "input"], totals.input_tokens)
            families.tokens.add_metric([engine, "output"], totals.output_tokens)
            families.requests.add_metric([engine], totals.requests)


def _add_current(families: Families, connection: Connection) -> None:
    """The figures that are counts of rows now: one aggregate query each (on indexed
    columns, or a table of one row per run)."""
    runs = dict(connection.execute(select(RunRow.state, func.count()).group_by(RunRow.state)).all())
    for state in [*(s.value for s in RunState), *sorted(set(runs) - {s.value for s in RunState})]:
        families.runs.add_metric([state], runs.get(state, 0))
    queue = dict(
        connection.execute(
            select(DeliveryRow.status, func.count())
            .where(DeliveryRow.status.in_(WAITING))
            .group_by(DeliveryRow.status)
        ).all()
    )
    for status in WAITING:
        families.queue.add_metric([status], queue.get(status, 0))
    takeovers = connection.execute(select(func.coalesce(func.sum(RunLeaseRow.takeovers), 0)))
    families.takeovers.add_metric([], int(takeovers.scalar_one()))
