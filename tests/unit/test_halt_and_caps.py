"""The halt as policy sees it (`policy/halt.py`) and the daily cost caps (`policy/cost_caps.py`)
decided by the shipped Cedar example over the real Cedar engine."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from codefactory.domain import Decision
from codefactory.policy.cedar import CedarPolicy, default_policy_path, examples_path, schema_path
from codefactory.policy.cost_caps import (
    CapRefusal,
    CostCaps,
    DailySpend,
    RoundFacts,
    dollars,
    forbids,
)
from codefactory.policy.halt import HALT_POLICY_ID, HaltingPolicy, HaltWatch

DAY = date(2026, 11, 30)
CAPS = examples_path() / "daily-cost-caps.cedar"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Store:
    """What the watch reads: a halt description or None, counting the reads."""

    def __init__(self) -> None:
        self.halt: str | None = None
        self.reads = 0
        self.down = False

    def __call__(self) -> str | None:
        self.reads += 1
        if self.down:
            raise OSError("database unreachable")
        return self.halt


def test_the_watch_reads_the_store_at_most_once_per_second() -> None:
    clock, store = Clock(), Store()
    watch = HaltWatch(store, ttl_s=1.0, clock=clock)
    assert watch.current() is None and watch.current() is None
    assert store.reads == 1
    store.halt = "halted by olive.ops at 2026-11-30T09:00:00Z: incident 42"
    clock.now += 0.5
    assert watch.current() is None  # still the cached answer
    clock.now += 0.6
    assert watch.current() == store.halt and store.reads == 2
    store.halt = None
    watch.forget()
    assert watch.current() is None and store.reads == 3


def test_an_unreachable_store_keeps_the_last_answer_then_fails_closed() -> None:
    clock, store = Clock(), Store()
    store.halt = "halted by olive.ops at 2026-11-30T09:00:00Z: incident"
    watch = HaltWatch(store, ttl_s=1.0, stale_s=10.0, clock=clock)
    assert watch.current() == store.halt
    store.down = True
    clock.now += 5
    assert watch.current() == store.halt  # a blip does not lift a halt
    clock.now += 20
    with pytest.raises(OSError, match="unreachable"):
        watch.current()
    never_read = HaltWatch(store, clock=clock)
    with pytest.raises(OSError):
        never_read.current()  # no answer yet is never taken for "not halted"


def routine(policy: object) -> Decision:
    assert isinstance(policy, HaltingPolicy | CedarPolicy)
    return policy.authorize(
        principal='TriggerSource::"cli"',
        action='Action::"fix_lint"',
        resource='Repository::"acme/shop"',
        context={"sponsor": "priya.shah", "source": "cli", "labels": []},
    )


def test_a_halted_policy_refuses_everything_with_the_halt_and_asks_cedar_otherwise() -> None:
    clock, store = Clock(), Store()
    policy = HaltingPolicy(
        CedarPolicy.from_file(default_policy_path()), HaltWatch(store, clock=clock)
    )
    assert routine(policy).allowed
    store.halt = "halted by olive.ops at 2026-11-30T09:00:00Z: bad model output"
    clock.now += 2
    refused = routine(policy)
    assert not refused.allowed
    assert refused.policy_ids == (HALT_POLICY_ID,)
    assert refused.summary == store.halt
    batch = policy.authorize_batch([])
    assert batch == []
    assert policy.text == CedarPolicy.from_file(default_policy_path()).text  # delegated


def caps(spend: DailySpend, *files: Path) -> tuple[CostCaps, list[CapRefusal]]:
    recorded: list[CapRefusal] = []
    policy = CedarPolicy.from_files(default_policy_path(), *files)
    return CostCaps(policy, lambda repository: spend, recorded.append), recorded


def facts(repository: str = "acme/shop", round_number: int = 1) -> RoundFacts:
    return RoundFacts(
        run_id="r-1",
        repository=repository,
        engine="agent:pydantic-ai",
        sponsor="priya.shah",
        agent="agent:codefactory",
        kind="general_change",
        round=round_number,
    )


def spend(repository_usd: float, organisation_usd: float) -> DailySpend:
    return DailySpend(
        day=DAY,
        repository_microusd=round(repository_usd * 1e6),
        organisation_microusd=round(organisation_usd * 1e6),
    )


def test_below_every_cap_a_round_goes_ahead_without_any_permit() -> None:
    checker, recorded = caps(spend(49.99, 499.99), CAPS)
    assert checker.refusal(facts()) is None
    assert recorded == []
    plain, _ = caps(spend(10_000, 10_000))  # the default policy alone: no cap, no permit
    assert plain.refusal(facts()) is None


def test_the_repository_cap_refuses_the_next_round_naming_the_policy_and_figures() -> None:
    checker, recorded = caps(spend(50.0, 120.5), CAPS)
    refusal = checker.refusal(facts(round_number=2))
    assert refusal is not None and recorded == [refusal]
    assert refusal.decision.policy_ids == ("daily-cost-cap-per-repository",)
    assert str(refusal) == (
        "daily cost cap: daily-cost-cap-per-repository refused engine round 2 of acme/shop: "
        "spent on models on 2026-11-30 (UTC) $50.00 for acme/shop, $120.50 for the "
        "organisation: a repository may spend at most $50 a day (UTC) on models: further "
        "engine rounds wait for the next day or a raised cap"
    )
    assert refusal.audit_data()["spend_today_microusd_repository"] == 50_000_000


def test_a_repository_of_its_own_and_the_organisation_have_their_caps() -> None:
    checker, _ = caps(spend(20.0, 20.0), CAPS)
    payments = checker.refusal(facts("acme/payments-service"))
    assert payments is not None
    assert payments.decision.policy_ids == ("daily-cost-cap-payments-service",)
    assert checker.refusal(facts("acme/shop")) is None
    busy, _ = caps(spend(1.0, 500.0), CAPS)
    organisation = busy.refusal(facts())
    assert organisation is not None
    assert organisation.decision.policy_ids == ("daily-cost-cap-organisation",)


def test_the_caps_conform_to_the_schema() -> None:
    policy = CedarPolicy.from_files(default_policy_path(), CAPS)
    assert policy.validate(schema_path().read_text()) == []


def test_only_a_deciding_forbid_or_an_error_stops_a_round() -> None:
    assert not forbids(Decision(allowed=True))
    assert not forbids(Decision(allowed=False))  # no permit: a guard lets it go ahead
    assert forbids(Decision(allowed=False, policy_ids=("cap",), reasons=("over",)))
    assert forbids(Decision(allowed=False, errors=("attribute missing",)))


def test_dollars_are_printed_exactly_from_micro_dollars() -> None:
    assert dollars(0) == "$0.00"
    assert dollars(1_500_000) == "$1.50"
    assert dollars(12_345_678) == "$12.345678"
    assert dollars(50_000_000) == "$50.00"


def test_an_engine_command_stops_when_the_halt_can_no_longer_be_checked() -> None:
    import subprocess

    from codefactory.sandbox.halting import _Watcher

    mark = "halt-mark-unit-test-0123456789abcdef"

    def unknowable() -> str | None:
        raise RuntimeError("the store is unreachable and the cached answer too old")

    command = subprocess.Popen(["sh", "-c", f"sleep 30; echo {mark}"], start_new_session=True)
    watcher = _Watcher(unknowable, mark, 0.1)
    watcher.start()
    try:
        assert command.wait(timeout=10) == -9
    finally:
        watcher.stop()
        if command.poll() is None:
            command.kill()
    assert watcher.halt == "the organisation-wide halt cannot be checked (RuntimeError)"
