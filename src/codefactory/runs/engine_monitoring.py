"""Ongoing monitoring of engines: each registry entry's thresholds (`[engine.metrics]`)
beside what this factory's runs show (the store's `EngineRecord`).

A metric is `ok`, `breached` or `no data`. The figures come from the factory's own records:
reviewers' verdicts, the gate's rounds and the gateway's spend, never the engine's account.
"""

from __future__ import annotations

from typing import Any

from codefactory.engines.registry_model import EngineEntry
from codefactory.store.port import EngineFigures


def monitoring(entry: EngineEntry, record: EngineFigures) -> dict[str, Any]:
    """`{"engine", "figures": {...}, "metrics": [{"metric", "value", "threshold", "state"}],
    "breached": [names]}` for one entry."""
    figures = record.as_dict()
    thresholds = entry.metrics
    rows = []
    for name, bound, lower in (
        ("acceptance_rate", thresholds.acceptance_rate, True),
        ("gate_failure_rate", thresholds.gate_failure_rate, False),
        ("cost_per_run", thresholds.cost_per_run, False),
    ):
        if bound is None:
            continue
        limit = float(bound.min) if lower else float(bound.max)  # type: ignore[union-attr]
        value = figures[name]
        if value is None:
            state = "no data"
        elif (value < limit) if lower else (value > limit):
            state = "breached"
        else:
            state = "ok"
        rows.append(
            {
                "metric": name,
                "value": value,
                "threshold": {"min" if lower else "max": limit},
                "state": state,
            }
        )
    return {
        "engine": entry.name,
        "figures": figures,
        "metrics": rows,
        "breached": [row["metric"] for row in rows if row["state"] == "breached"],
    }
