"""Benchmark: the harness's overhead per run with each engine, against the replay upstream.

Run with `make bench B=engines` (or `.venv/bin/python benchmarks/bench_engines.py --runs 20`).
Each run takes the demo's bug ticket (SVC-104) on the sample service (image built once) through
the whole loop (registry, policy, sandbox, context, engine, verify, package). Its wall time is
split three ways:

- the engine: time inside `Engine.propose` (for the in-harness agent this includes its model
  calls through the gateway and its tool calls in the sandbox: the engine's own work);
- the checks: time inside the gate (lint, SAST, secrets, SCA, the repository's tests);
- the harness: everything else (intake, registry and policy, provisioning over the
  pre-warmed image, context, the gateway grant, sessions, commit, package, audit writes).

The baseline, measured in the same run, is the same split for the lint-fix recipe on the
lint ticket (SVC-102): a run whose engine reaches no model. Target (issue 9): the harness's
p50 under 1 s per run with every engine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codefactory.config import Settings  # noqa: E402
from codefactory.demo import (  # noqa: E402
    DEMO_TRANSCRIPT,
    TEMPLATE,
    create_sample_repository,
    write_demo_people,
)
from codefactory.engines.settings import GatewaySettings  # noqa: E402
from codefactory.factory import Factory, build_factory  # noqa: E402
from codefactory.runs.tickets import accept_ticket  # noqa: E402


class Stopwatch:
    """Accumulates the time spent inside wrapped calls."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


def one_run(factory: Factory, repo: Path, ticket: bytes, engine: str) -> tuple[float, ...]:
    """(total, engine, checks) seconds of one run, which must reach review."""
    engine_time, checks_time = Stopwatch(), Stopwatch()
    installed = factory.loop.engines[engine]
    original_propose, original_gate = installed.propose, factory.loop.gate.run
    installed.propose = engine_time.wrap(original_propose)  # type: ignore[method-assign]
    factory.loop.gate.run = checks_time.wrap(original_gate)  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        run = accept_ticket(factory, payload=ticket, repo=repo)
        total = time.perf_counter() - started
    finally:
        installed.propose = original_propose  # type: ignore[method-assign]
        factory.loop.gate.run = original_gate  # type: ignore[method-assign]
    if run.state.value != "in_review":
        raise SystemExit(f"{engine}: run {run.id} ended {run.state.value}: {run.reason}")
    return total, engine_time.seconds, checks_time.seconds


def measure(
    root: Path, label: str, engine: str, ticket: Path, runs: int, upstream: str
) -> list[tuple[float, ...]]:
    people = write_demo_people(root / label / "people")  # the sponsor is this OS account
    settings = Settings(data_dir=root / label / "data", gateway=GatewaySettings(upstream=upstream))
    identity = settings.identity.model_copy(update={"directory_file": people.directory_file})
    settings = settings.model_copy(update={"identity": identity})
    factory = build_factory(settings)
    payload = ticket.read_bytes()
    repo = create_sample_repository(root / label / "sample-service")
    one_run(factory, repo, payload, engine)  # builds the image, imports the engine
    # every run starts from the same commit of the same repository, as a team's runs do
    return [one_run(factory, repo, payload, engine) for _ in range(runs)]


def summary(label: str, samples: Sequence[tuple[float, ...]]) -> float:
    harness = [total - engine - checks for total, engine, checks in samples]
    p50 = statistics.median(harness)
    total, engine, checks = (statistics.median(s[i] for s in samples) for i in range(3))
    p95 = sorted(harness)[int(0.95 * (len(harness) - 1))]
    print(
        f"{label:<34} runs {len(samples):3d}  total p50 {total:6.2f} s  engine {engine:6.2f} s"
        f"  checks {checks:6.2f} s  harness p50 {p50:5.2f} s  p95 {p95:5.2f} s"
    )
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="measured runs per engine")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as folder:
        root = Path(folder)
        tickets = TEMPLATE / "tickets"
        baseline = measure(
            root, "baseline", "recipe:lint-fix", tickets / "SVC-102.json", args.runs, ""
        )
        agent = measure(
            root,
            "agent",
            "agent:pydantic-ai",
            tickets / "SVC-104.json",
            args.runs,
            f"replay:{DEMO_TRANSCRIPT}",
        )
        print()
        base = summary("recipe:lint-fix (baseline)", baseline)
        p50 = summary("agent:pydantic-ai (2 rounds)", agent)
        verdict = "met" if p50 < 1.0 else "MISSED"
        print(
            f"\nharness overhead, agent vs baseline: {p50:.2f} s vs {base:.2f} s; "
            f"target < 1 s {verdict}"
        )


if __name__ == "__main__":
    main()
