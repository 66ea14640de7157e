"""`GET /metrics` over a real socket (uvicorn in a thread) after real runs (SQLite and
bubblewrap, or PostgreSQL under CODEFACTORY_TEST_DATABASE=postgresql): every figure parsed
from the exposition equals what the store says."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import SecretStr
from sqlalchemy.orm import Session

from codefactory.audit.events import EngineSpend
from codefactory.config import Settings
from codefactory.domain import Run, RunState
from codefactory.engines.session import Spend
from codefactory.factory import Factory, build_factory
from codefactory.observability.settings import ObservabilitySettings
from codefactory.runs.tickets import accept_ticket
from codefactory.store.deliveries import DeliveryFacts, DeliveryQueue
from codefactory.store.leases import RunLeases
from codefactory.web.app import create_app
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service

pytestmark = pytest.mark.usefixtures("bwrap_available")
TOKEN = "scrape-token-0f3c9a"


@pytest.fixture
def factory(tmp_path: Path, uv_cache: Path) -> Factory:
    data_dir = data_dir_sharing_cache(tmp_path / "data", uv_cache)
    observability = ObservabilitySettings(metrics_token=SecretStr(TOKEN))
    return build_factory(Settings(data_dir=data_dir, observability=observability))


@contextmanager
def served(factory: Factory) -> Iterator[str]:
    """The full app on a loopback port, as `serve` runs it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(create_app(factory), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def scrape(url: str) -> dict[str, list[Sample]]:
    answer = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f.samples for f in text_string_to_metric_families(answer.text)}


def samples(got: dict[str, list[Sample]], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """`name`'s samples by their sorted labels."""
    family = name.removesuffix("_total").removesuffix("_bucket").removesuffix("_count")
    family = family.removesuffix("_sum")
    return {tuple(sorted(s.labels.items())): s.value for s in got.get(family, []) if s.name == name}


def ticket(name: str) -> bytes:
    return (TEMPLATE / "tickets" / name).read_bytes()


def step_durations(runs: list[Run]) -> dict[str, list[float]]:
    """What the store's histories say each completed step took, per state."""
    durations: dict[str, list[float]] = {}
    for run in runs:
        for step, after in zip(run.history, run.history[1:], strict=False):
            durations.setdefault(step.state.value, []).append((after.at - step.at).total_seconds())
    return durations


def assert_matches_store(got: dict[str, list[Sample]], factory: Factory) -> None:
    runs = [factory.store.require_run(r.id) for r in factory.store.search_runs(limit=1000)]
    by_state = Counter(run.state.value for run in runs)
    assert samples(got, "codefactory_runs") == {
        (("state", state.value),): float(by_state[state.value]) for state in RunState
    }
    durations = step_durations(runs)
    counts = samples(got, "codefactory_step_duration_seconds_count")
    sums = samples(got, "codefactory_step_duration_seconds_sum")
    assert counts == {(("state", s),): float(len(d)) for s, d in durations.items()}
    assert sums.keys() == counts.keys()
    for state, seen in durations.items():
        assert sums[(("state", state),)] == pytest.approx(sum(seen), abs=1e-6)
        buckets = samples(got, "codefactory_step_duration_seconds_bucket")
        assert buckets[(("le", "5.0"), ("state", state))] == sum(1 for s in seen if s <= 5.0)
    verdicts = Counter(
        (check["check"], "pass" if check["passed"] else "fail")
        for run in runs
        for check in factory.store.check_runs(run.id)
    )
    assert samples(got, "codefactory_gate_verdicts_total") == {
        (("check", check), ("verdict", verdict)): float(n)
        for (check, verdict), n in verdicts.items()
    }


def test_metrics_over_http_equal_the_store_after_real_runs(
    factory: Factory, tmp_path: Path
) -> None:
    repo = sample_service(tmp_path / "sample-service")
    with served(factory) as url:
        refused = accept_ticket(factory, payload=ticket("SVC-103.json"), repo=repo)
        assert refused.state is RunState.REFUSED
        first = scrape(url)
        assert_matches_store(first, factory)
        assert samples(first, "codefactory_runs")[(("state", "refused"),)] == 1.0

        run = accept_ticket(factory, payload=ticket("SVC-102.json"), repo=repo)
        assert run.state is RunState.IN_REVIEW, run.reason
        spent = Spend(requests=3, input_tokens=1200, output_tokens=340, cost_usd=0.0125)
        with factory.store.atomic() as tx:  # as GatewaySessions.close records a run's spend
            tx.append(EngineSpend(actor="gateway", run_id=run.id, engine="codex", **asdict(spent)))
        leases = RunLeases(factory.store.engine, factory.audit, lease_s=0.0)
        assert leases.acquire(run.id, "host-a:1:x") is not None
        assert leases.acquire(run.id, "host-b:2:y") is not None  # the first one's expired
        facts = DeliveryFacts(source="github", delivery_id="d-1", event="issues",
                              digest="sha256:00", received_at=datetime.now(UTC))  # fmt: skip
        with Session(factory.store.engine) as session, session.begin():
            DeliveryQueue.add(session, facts, status="queued")
        got = scrape(url)

    assert_matches_store(got, factory)
    verdicts = samples(got, "codefactory_gate_verdicts_total")
    assert verdicts and all(label[1] == ("verdict", "pass") for label in verdicts)
    assert samples(got, "codefactory_step_duration_seconds_count")[(("state", "proposing"),)] == 1
    assert samples(got, "codefactory_engine_cost_usd_total") == {(("engine", "codex"),): 0.0125}
    assert samples(got, "codefactory_engine_tokens_total") == {
        (("direction", "input"), ("engine", "codex")): 1200.0,
        (("direction", "output"), ("engine", "codex")): 340.0,
    }
    assert samples(got, "codefactory_engine_requests_total") == {(("engine", "codex"),): 3.0}
    assert samples(got, "codefactory_lease_takeovers_total") == {(): 1.0}
    assert leases.total_takeovers() == 1
    waiting = DeliveryQueue(factory.store.engine).counts()
    assert samples(got, "codefactory_queue_depth") == {
        (("status", "queued"),): float(waiting.get("queued", 0)),
        (("status", "received"),): float(waiting.get("received", 0)),
    }
    assert waiting.get("queued") == 1


def test_a_scrape_without_the_token_is_refused_and_audited(factory: Factory) -> None:
    with served(factory) as url:
        missing = httpx.get(f"{url}/metrics")
        wrong = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer not-the-token"})
        basic = httpx.get(f"{url}/metrics", headers={"Authorization": f"Basic {TOKEN}"})
        api = httpx.get(f"{url}/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    for answer in (missing, wrong, basic):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Bearer realm="metrics"'
        assert "CODEFACTORY_OBSERVABILITY__METRICS_TOKEN" in answer.text
    assert api.status_code == 401  # the metrics token opens /metrics only
    refusals = [e.data for e in factory.audit.events() if e.name == "login-refused"]
    assert refusals and refusals[0]["detail"] == "GET /metrics without the metrics token"
    assert refusals[0]["source"] == "127.0.0.1"


def test_without_a_token_the_metrics_are_open(tmp_path: Path) -> None:
    factory = build_factory(Settings(data_dir=tmp_path / "data"))
    with served(factory) as url:
        answer = httpx.get(f"{url}/metrics")
    assert answer.status_code == 200
    families = {f.name for f in text_string_to_metric_families(answer.text)}
    assert families == {
        "codefactory_runs", "codefactory_step_duration_seconds", "codefactory_gate_verdicts",
        "codefactory_engine_cost_usd", "codefactory_engine_tokens",
        "codefactory_engine_requests", "codefactory_queue_depth", "codefactory_lease_takeovers",
    }  # fmt: skip
