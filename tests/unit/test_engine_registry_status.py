"""An entry's status on a day, and whether a run may use an engine (each refusal reason)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from codefactory.domain import ChangeKind
from codefactory.engines.registry import (
    RefusalReason,
    UseDecision,
    entry_status,
    load_registry,
)
from codefactory.engines.registry_checks import registry_problems
from codefactory.engines.registry_model import EngineEntry, EngineStatus
from tests.unit.test_engine_registry_support import DELETE, llm_entry, recipe_entry, registry_of

NOON = datetime(2026, 12, 1, 12, tzinfo=UTC)
GENERAL = ChangeKind.GENERAL_CHANGE


def entry_of(data: dict[str, object]) -> EngineEntry:
    (entry,) = registry_of(data)
    return entry


def status(data: dict[str, object], now: datetime = NOON) -> EngineStatus:
    return entry_status(entry_of(data), now)


def test_cleared_through_its_review_date_expired_the_day_after() -> None:
    entry = entry_of(llm_entry(validated_on=date(2026, 9, 1), next_review=date(2026, 10, 1)))
    assert entry_status(entry, datetime(2026, 10, 1, 23, 59, tzinfo=UTC)) is EngineStatus.CLEARED
    assert entry_status(entry, datetime(2026, 10, 2, 0, 0, tzinfo=UTC)) is EngineStatus.EXPIRED


def test_the_day_is_the_utc_day_of_an_aware_time() -> None:
    entry = entry_of(llm_entry(validated_on=date(2026, 9, 1), next_review=date(2026, 10, 1)))
    # 20:00 on the 1st in New York is already the 2nd in UTC.
    new_york = timezone(timedelta(hours=-4))
    assert entry_status(entry, datetime(2026, 10, 1, 20, tzinfo=new_york)) is EngineStatus.EXPIRED
    assert entry_status(entry, datetime(2026, 10, 1, 20)) is EngineStatus.CLEARED


@pytest.mark.parametrize(
    ("declared", "expected"),
    [("suspended", EngineStatus.SUSPENDED), ("retired", EngineStatus.RETIRED)],
)
def test_a_declared_status_wins_over_everything(declared: str, expected: EngineStatus) -> None:
    assert (
        status(llm_entry(status=declared, validator="", next_review=date(2020, 1, 1))) is expected
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"validator": DELETE},
        {"validator": "  "},
        {"validator": "User:Olivia"},
        {"validated_on": DELETE},
        {"validation_evidence": []},
        {"validated_on": date(2026, 12, 2)},
    ],
    ids=["no-validator", "blank-validator", "owner-validates", "no-date", "no-evidence", "future"],
)
def test_unvalidated(overrides: dict[str, object]) -> None:
    assert status(llm_entry(**overrides)) is EngineStatus.UNVALIDATED


def test_a_recipe_needs_a_validator_and_a_date_but_no_evidence() -> None:
    assert status(recipe_entry()) is EngineStatus.CLEARED
    assert status(recipe_entry(validator=DELETE)) is EngineStatus.UNVALIDATED
    assert status(recipe_entry(validated_on=DELETE)) is EngineStatus.UNVALIDATED


@pytest.mark.parametrize(
    "overrides",
    [
        {"prices": {"gpt-4o": {"input_per_mtok": 1, "output_per_mtok": 2}}},
        {"budget": {"requests": 10, "input_tokens": 1, "output_tokens": 1, "cost_usd": 1}},
        {"tools": ["read_file", "shell"]},
        {"tools": []},
        {"next_review": date(2026, 10, 1), "validated_on": date(2026, 10, 2)},
        {"prohibited_change_kinds": ["fix_lint"]},
    ],
    ids=["no-price", "no-wall-cap", "unknown-tool", "no-tools", "review-before-validation", "both"],
)
def test_invalid(overrides: dict[str, object]) -> None:
    assert status(llm_entry(**overrides)) is EngineStatus.INVALID


def test_an_external_cli_may_have_no_tool_allow_list_and_its_own_tool_names() -> None:
    assert status(llm_entry(name="cli:codex", tools=[])) is EngineStatus.CLEARED
    assert status(llm_entry(name="cli:claude-code", tools=["Bash", "Edit"])) is EngineStatus.CLEARED


def check(data: dict[str, object], **asked: Any) -> UseDecision:
    question: dict[str, Any] = {
        "kind": GENERAL,
        "repository": "web",
        "data_class": "internal",
        "now": NOON,
        **asked,
    }
    return registry_of(data).check_use(str(data["name"]), **question)


def test_a_cleared_engine_is_allowed_with_a_sentence_saying_so() -> None:
    decision = check(llm_entry())
    assert decision.allowed and decision.refusal is None
    assert decision.status is EngineStatus.CLEARED
    assert decision.reason == (
        "engine agent:pydantic-ai is cleared for general_change on web (internal data) "
        "until 2027-06-30"
    )
    assert decision.entry is not None and decision.entry.name == "agent:pydantic-ai"


def test_an_engine_not_in_the_registry() -> None:
    decision = registry_of(llm_entry()).check_use(
        "cli:codex", kind=GENERAL, repository="web", data_class="public", now=NOON
    )
    assert not decision.allowed
    assert decision.refusal is RefusalReason.UNKNOWN_ENGINE
    assert decision.reason == "engine cli:codex is not in the engine registry"
    assert decision.status is None and decision.entry is None


def test_expired() -> None:
    decision = check(
        llm_entry(name="cli:codex", validated_on=date(2026, 9, 1), next_review=date(2026, 10, 1))
    )
    assert decision.refusal is RefusalReason.NOT_CLEARED
    assert decision.status is EngineStatus.EXPIRED
    assert decision.reason == "engine cli:codex is not cleared: its next review was due 2026-10-01"


def test_suspended_gives_its_reason() -> None:
    decision = check(llm_entry(status="suspended", status_reason="streams without usage"))
    assert decision.refusal is RefusalReason.NOT_CLEARED
    assert decision.reason == (
        "engine agent:pydantic-ai is not cleared: it is suspended: streams without usage"
    )


def test_retired() -> None:
    decision = check(llm_entry(status="retired"))
    assert decision.status is EngineStatus.RETIRED
    assert decision.reason == "engine agent:pydantic-ai is not cleared: it is retired"


def test_unvalidated_names_what_the_validation_lacks() -> None:
    decision = check(llm_entry(validator="user:olivia", validation_evidence=[]))
    assert decision.status is EngineStatus.UNVALIDATED
    assert decision.reason == (
        "engine agent:pydantic-ai is not cleared: it is not validated: "
        "validator: is the owner (user:olivia); validation must be independent; "
        "validation_evidence: a language-model engine needs the run ids"
    )


def test_a_validation_dated_in_the_future() -> None:
    decision = check(llm_entry(validated_on=date(2026, 12, 24)))
    assert decision.reason.endswith("it is not validated: its validation is dated 2026-12-24")


def test_invalid_names_the_rule() -> None:
    decision = check(llm_entry(tools=["read_file", "rm"]))
    assert decision.status is EngineStatus.INVALID
    assert decision.reason.startswith(
        "engine agent:pydantic-ai is not cleared: its registry entry is invalid: tools: unknown rm"
    )


def test_a_change_kind_not_approved() -> None:
    decision = check(llm_entry(), kind=ChangeKind.BUMP_DEPENDENCY)
    assert decision.refusal is RefusalReason.CHANGE_KIND_NOT_APPROVED
    assert decision.reason == (
        "engine agent:pydantic-ai is not approved for bump_dependency "
        "(approved: general_change, fix_lint)"
    )


def test_a_prohibited_change_kind() -> None:
    decision = check(llm_entry(), kind=ChangeKind.MODIFY_CI)
    assert decision.refusal is RefusalReason.CHANGE_KIND_PROHIBITED
    assert decision.reason == "engine agent:pydantic-ai is prohibited from modify_ci"


def test_repositories_are_matched_by_glob() -> None:
    assert check(llm_entry(), repository="payments-ledger").allowed
    decision = check(llm_entry(), repository="Payments-ledger")
    assert decision.refusal is RefusalReason.REPOSITORY_NOT_APPROVED
    assert (
        decision.reason == "engine agent:pydantic-ai is not approved for repository Payments-ledger"
    )


def test_a_prohibited_repository_wins_over_an_approved_glob() -> None:
    decision = check(llm_entry(), repository="payments-core")
    assert decision.refusal is RefusalReason.REPOSITORY_PROHIBITED
    assert decision.reason == (
        "engine agent:pydantic-ai is prohibited on repository payments-core "
        "(matches 'payments-core')"
    )


def test_a_data_class_not_approved() -> None:
    decision = check(llm_entry(), data_class="confidential")
    assert decision.refusal is RefusalReason.DATA_CLASS_NOT_APPROVED
    assert decision.reason == (
        "engine agent:pydantic-ai is not approved for confidential data "
        "(approved: public, internal)"
    )


def test_an_unknown_data_class_is_an_error_not_a_refusal() -> None:
    with pytest.raises(ValueError, match="data class 'secret' is not one of public, internal"):
        check(llm_entry(), data_class="secret")


def test_a_change_kind_may_be_given_by_its_value_but_must_be_known() -> None:
    assert check(llm_entry(), kind="fix_lint").allowed
    with pytest.raises(ValueError, match="'rewrite' is not a valid ChangeKind"):
        check(llm_entry(), kind="rewrite")


def test_check_use_takes_an_entry_as_well_as_a_name() -> None:
    registry = registry_of(llm_entry())
    (entry,) = registry
    decision = registry.check_use(
        entry, kind=GENERAL, repository="web", data_class="public", now=NOON
    )
    assert decision.allowed


def test_registry_problems_lists_each_rule_broken_by_entry() -> None:
    registry = registry_of(
        llm_entry(validator="user:olivia", prices={}),
        recipe_entry(egress_hosts=["pypi.org"], validated_on=date(2026, 12, 5)),
        llm_entry(name="cli:aider", status="suspended", validator=DELETE, validated_on=DELETE),
    )
    assert registry_problems(registry, today=date(2026, 12, 1)) == [
        "engine agent:pydantic-ai: validator: is the owner (user:olivia); "
        "validation must be independent",
        "engine agent:pydantic-ai: prices: no price for model gpt-4.1-mini",
        "engine recipe:lint-fix: egress_hosts: a recipe reaches no host",
        "engine recipe:lint-fix: validated_on: 2026-12-05 is after today (2026-12-01)",
    ]


def test_the_shipped_registry_is_valid_and_shows_a_refusal() -> None:
    registry = load_registry()
    assert registry_problems(registry, today=NOON.date()) == []
    statuses = {entry.name: entry_status(entry, NOON) for entry in registry}
    assert statuses["agent:pydantic-ai"] is EngineStatus.CLEARED
    assert statuses["cli:aider"] is EngineStatus.SUSPENDED
    agent = registry.get("agent:pydantic-ai")
    assert agent is not None
    assert agent.budget().requests == 40 and agent.budget().cost_usd == 2.0
    assert "gpt-4.1-mini" in agent.budget().prices
    assert len(agent.allowed_tools) == 7
    for name in ("cli:codex", "cli:claude-code", "cli:mini-swe-agent"):
        assert registry.check_use(
            name, kind=GENERAL, repository="any", data_class="internal", now=NOON
        ).allowed
