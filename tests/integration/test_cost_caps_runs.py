"""Daily cost caps on the real factory: the Cedar policy in force forbids an engine round once
today's recorded model spend (the gateway's `model-called` events) reaches a cap; the run ends
`failed` naming the cap and the figures, and the refusal is a recorded decision."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.domain import CheckResult, Proposal, RunState, Task, UnknownEvent
from codefactory.engines.guarded import GuardedEngine
from codefactory.factory import Factory, build_factory
from codefactory.policy.cedar import default_policy_path
from codefactory.runs.tickets import accept_ticket
from codefactory.sandbox.port import Workspace
from codefactory.store.spend import DailySpendReader
from codefactory.triggers.jira import JiraTicketSource
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service

pytestmark = pytest.mark.usefixtures("bwrap_available")

CAP = """
@id("daily-cost-cap-one-dollar")
@reason("a repository may spend at most $1 a day (UTC) on models")
forbid (
  principal is Engine,
  action == Action::"engine-round",
  resource is Repository
)
when { context.spend_today_microusd_repository >= 1000000 };
"""


@pytest.fixture
def factory(tmp_path: Path, uv_cache: Path) -> Iterator[Factory]:
    policy = tmp_path / "policy.cedar"
    policy.write_text(default_policy_path().read_text() + CAP)
    data_dir = data_dir_sharing_cache(tmp_path / "data", uv_cache)
    built = build_factory(Settings(data_dir=data_dir, policy_file=policy))
    yield built
    built.store.engine.dispose()  # its connections closed now, not whenever it is collected


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return sample_service(tmp_path / "sample-service")


def lint_ticket() -> bytes:
    return (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()


def model_called(
    factory: Factory, run_id: str, cost_usd: float, at: datetime | None = None
) -> None:
    """A model call as the gateway records it (factory.model_gateway's `record`)."""
    event = UnknownEvent(
        kind="model-called",
        actor="gateway",
        run_id=run_id,
        payload={"model": "gpt-test", "cost_usd": cost_usd, "outcome": "ok", "status": 200},
        at=at or datetime.now(UTC),
    )
    factory.audit.append(event)


class SpendingEngine:
    """Round 1 spends $1.50 on its model and writes a change the tests refuse."""

    name = "test:spending"
    version = "0"

    def __init__(self, factory: Factory) -> None:
        self.factory = factory
        self.rounds = 0

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: object = None,
    ) -> Proposal:
        self.rounds += 1
        model_called(self.factory, workspace.run_id, 0.75)
        model_called(self.factory, workspace.run_id, 0.75)
        workspace.write_file("service/hostnames.py", b"def to_ascii(h):\n    return h\n")
        return Proposal(engine=self.name, engine_version=self.version, rationale="break it")


def test_a_run_whose_spend_crosses_the_cap_does_not_start_its_next_round(
    factory: Factory, repo: Path
) -> None:
    own_engines = factory.loop.engines
    wired = own_engines["recipe:lint-fix"]
    assert isinstance(wired, GuardedEngine)  # the factory guards its engines
    engine = SpendingEngine(factory)
    factory.loop.engines = {"recipe:lint-fix": GuardedEngine(engine, wired.guards)}
    run = accept_ticket(factory, payload=lint_ticket(), repo=repo)
    assert run.state is RunState.FAILED
    assert engine.rounds == 1
    day = datetime.now(UTC).date().isoformat()
    assert run.reason == (
        f"daily cost cap: daily-cost-cap-one-dollar refused engine round 2 of {run.repository}: "
        f"spent on models on {day} (UTC) $1.50 for {run.repository}, $1.50 for the "
        "organisation: a repository may spend at most $1 a day (UTC) on models"
    )
    [reached] = [e.data for e in factory.audit.events(run.id) if e.name == "cost-cap-reached"]
    assert reached["spend_today_microusd_repository"] == 1_500_000
    assert reached["round"] == 2 and reached["policy_ids"] == ["daily-cost-cap-one-dollar"]
    decided = [
        e.data
        for e in factory.audit.events(run.id)
        if e.name == "policy-decided" and e.data["stage"] == "engine-round"
    ]
    assert decided == [
        {
            "stage": "engine-round",
            "action": "engine-round",
            "allowed": False,
            "policy_ids": ["daily-cost-cap-one-dollar"],
            "reasons": ["a repository may spend at most $1 a day (UTC) on models"],
            "errors": [],
        }
    ]

    # the next run on the repository (the factory's own lint recipe) never starts its engine
    factory.loop.engines = own_engines
    capped = accept_ticket(factory, payload=lint_ticket(), repo=repo)
    assert capped.state is RunState.FAILED
    assert capped.reason.startswith("daily cost cap: daily-cost-cap-one-dollar refused engine ")
    assert "round 1 of" in capped.reason and "$1.50 for the organisation" in capped.reason
    names = [e.name for e in factory.audit.events(capped.id)]
    assert "engine-proposed" not in names and "cost-cap-reached" in names
    assert factory.audit.verify().ok


def test_spend_is_counted_per_repository_and_per_utc_day(factory: Factory) -> None:
    source = JiraTicketSource()
    runs = {}
    for repository in ("acme/shop", "acme/payments"):
        event = source.parse(lint_ticket(), repository=repository)
        runs[repository] = factory.loop.submit(
            event, sponsor="priya.shah", agent_id=factory.settings.agent_id
        )
    model_called(factory, runs["acme/shop"], 0.4)
    model_called(factory, runs["acme/shop"], 0.0000011)  # rounded up to the micro-dollar
    model_called(factory, runs["acme/payments"], 2.0)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    model_called(factory, runs["acme/shop"], 100.0, at=yesterday)  # another UTC day
    reader = DailySpendReader(factory.store.engine)
    assert reader.spend("acme/shop") == (400_002, 2_400_002)
    assert reader.spend("acme/payments") == (2_000_000, 2_400_002)
    assert reader.spend("acme/none") == (0, 2_400_002)
    assert reader.spend("acme/shop", yesterday.date()) == (100_000_000, 100_000_000)
