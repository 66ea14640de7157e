"""Reading the engine registry: each kind of bad input gets a message naming file, entry, field."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codefactory.domain import ChangeKind
from codefactory.engines.registry import (
    RegistryInvalid,
    default_registry_path,
    load_registry,
    parse_registry,
)
from codefactory.engines.registry_model import (
    DataClass,
    Lifecycle,
    Materiality,
    WireProtocol,
)
from codefactory.engines.session import Budget, Price
from tests.unit.test_engine_registry_support import (
    DELETE,
    llm_entry,
    recipe_entry,
    to_toml,
    write_registry,
)


def problems_of(text: str) -> tuple[str, ...]:
    with pytest.raises(RegistryInvalid) as caught:
        parse_registry(text, source="bank.toml")
    return caught.value.problems


def only_problem(text: str) -> str:
    (problem,) = problems_of(text)
    return problem


def test_a_valid_entry_reads_into_typed_fields() -> None:
    registry = parse_registry(to_toml(llm_entry(), recipe_entry()), source="bank.toml")
    entry = registry.get("agent:pydantic-ai")
    assert entry is not None
    assert [e.name for e in registry] == ["agent:pydantic-ai", "recipe:lint-fix"]
    assert entry.status is Lifecycle.ACTIVE
    assert entry.protocol is WireProtocol.OPENAI_CHAT
    assert entry.materiality is Materiality.MEDIUM
    assert entry.change_kinds == [ChangeKind.GENERAL_CHANGE, ChangeKind.FIX_LINT]
    assert entry.data_classes == [DataClass.PUBLIC, DataClass.INTERNAL]
    assert entry.validated_on == date(2026, 11, 1)
    assert entry.next_review == date(2027, 6, 30)
    assert entry.allowed_tools == ("read_file", "edit_file", "finish")
    assert registry.source == "bank.toml"
    assert registry.get("cli:codex") is None


def test_the_budget_for_the_session_carries_the_prices() -> None:
    entry = parse_registry(to_toml(llm_entry())).get("agent:pydantic-ai")
    assert entry is not None
    assert entry.budget() == Budget(
        requests=40,
        input_tokens=400_000,
        output_tokens=40_000,
        cost_usd=2.0,
        wall_s=600.0,
        prices={"gpt-4.1-mini": Price(input_per_mtok=0.4, output_per_mtok=1.6)},
    )


def test_a_measure_left_out_of_the_budget_allows_nothing() -> None:
    entry = parse_registry(to_toml(recipe_entry())).get("recipe:lint-fix")
    assert entry is not None
    budget = entry.budget()
    assert (budget.requests, budget.input_tokens, budget.cost_usd, budget.wall_s) == (0, 0, 0, 0)
    assert budget.prices == {}


def test_repositories_default_to_every_repository() -> None:
    entry = parse_registry(to_toml(llm_entry(repositories=DELETE))).get("agent:pydantic-ai")
    assert entry is not None and entry.repositories == ["*"]


def test_not_toml() -> None:
    problem = only_problem("[[engine]\nname = 1\n")
    assert problem.startswith("bank.toml: not TOML:")


def test_an_unknown_field_names_the_entry_and_the_field() -> None:
    problem = only_problem(to_toml(llm_entry(temperature=0.2)))
    assert (
        problem
        == "bank.toml: engine agent:pydantic-ai: temperature: Extra inputs are not permitted"
    )


def test_an_unknown_nested_field_names_its_path() -> None:
    budget = {"requests": 4, "tokens": 5}
    problem = only_problem(to_toml(llm_entry(budget=budget)))
    assert problem.startswith("bank.toml: engine agent:pydantic-ai: budget.tokens: Extra inputs")


def test_an_unknown_top_level_key() -> None:
    problem = only_problem(to_toml(llm_entry(), engines_version=2))
    assert problem.startswith("bank.toml: engines_version: Extra inputs are not permitted")


def test_only_format_1_is_read() -> None:
    problem = only_problem(to_toml(llm_entry(), format=2))
    assert problem.startswith("bank.toml: format: Input should be less than or equal to 1")


def test_a_missing_field() -> None:
    problem = only_problem(to_toml(llm_entry(next_review=DELETE)))
    assert problem == "bank.toml: engine agent:pydantic-ai: next_review: Field required"


def test_a_number_written_as_a_string_is_not_read_as_a_number() -> None:
    problem = only_problem(to_toml(llm_entry(budget={"requests": "40"})))
    assert problem.startswith("bank.toml: engine agent:pydantic-ai: budget.requests: ")
    assert "valid integer" in problem


@pytest.mark.parametrize("value", ["2", True])
def test_a_price_must_be_a_number(value: object) -> None:
    prices = {"gpt-4.1-mini": {"input_per_mtok": value, "output_per_mtok": 1}}
    problem = only_problem(to_toml(llm_entry(prices=prices)))
    assert problem == (
        "bank.toml: engine agent:pydantic-ai: prices.gpt-4.1-mini.input_per_mtok: must be a number"
    )


def test_a_negative_budget_is_refused() -> None:
    problem = only_problem(to_toml(llm_entry(budget={"cost_usd": -1})))
    assert "budget.cost_usd: Input should be greater than or equal to 0" in problem


def test_a_rate_above_one_is_refused() -> None:
    problem = only_problem(to_toml(llm_entry(metrics={"acceptance_rate": {"min": 60}})))
    assert "metrics.acceptance_rate.min: Input should be less than or equal to 1" in problem


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("change_kinds", ["general_change", "rewrite_everything"]),
        ("prohibited_change_kinds", ["deploy"]),
        ("data_classes", ["secret"]),
        ("status", "paused"),
        ("materiality", "critical"),
        ("protocol", "gemini"),
    ],
)
def test_an_unknown_enumerated_value(field: str, value: object) -> None:
    problem = only_problem(to_toml(llm_entry(**{field: value})))
    assert problem.startswith(f"bank.toml: engine agent:pydantic-ai: {field}")
    assert "Input should be" in problem


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("30/06/2027", "must be an ISO date (YYYY-MM-DD)"),
        ("2027-6-30", "must be an ISO date (YYYY-MM-DD)"),
        (20270630, "must be an ISO date (YYYY-MM-DD)"),
        (datetime(2027, 6, 30, 9, 0), "must be a date (YYYY-MM-DD), not a date and time"),
    ],
)
def test_dates_are_iso_dates(value: object, message: str) -> None:
    problem = only_problem(to_toml(llm_entry(next_review=value)))
    assert problem == f"bank.toml: engine agent:pydantic-ai: next_review: {message}"


def test_an_iso_date_string_is_a_date() -> None:
    entry = parse_registry(to_toml(llm_entry(validated_on="2026-10-01"))).get("agent:pydantic-ai")
    assert entry is not None and entry.validated_on == date(2026, 10, 1)


def test_an_impossible_date() -> None:
    problem = only_problem(to_toml(llm_entry(validated_on="2026-02-30")))
    assert problem.startswith("bank.toml: engine agent:pydantic-ai: validated_on: ")


@pytest.mark.parametrize("name", ["codex", "CLI:codex", "tool:codex", "cli:", "cli:Codex"])
def test_a_registry_name_has_a_kind_and_a_lower_case_name(name: str) -> None:
    problem = only_problem(to_toml(llm_entry(name=name)))
    assert problem == (
        f"bank.toml: engine {name}: name: must be recipe:NAME, agent:NAME or cli:NAME (lower case)"
    )


def test_an_entry_without_a_name_is_named_by_its_position() -> None:
    problems = problems_of(to_toml(recipe_entry(), llm_entry(name=DELETE)))
    assert problems == ("bank.toml: engine #2 (no name): name: Field required",)


def test_every_problem_is_listed() -> None:
    text = to_toml(llm_entry(status="paused"), recipe_entry(owner=DELETE, validator=3))
    problems = problems_of(text)
    assert len(problems) == 3
    assert problems[0].startswith("bank.toml: engine agent:pydantic-ai: status:")
    assert problems[1] == "bank.toml: engine recipe:lint-fix: owner: Field required"
    assert problems[2].startswith("bank.toml: engine recipe:lint-fix: validator:")


def test_a_name_used_twice() -> None:
    problems = problems_of(to_toml(llm_entry(), recipe_entry(), llm_entry()))
    assert problems == ("bank.toml: engine agent:pydantic-ai: name: used by 2 entries",)


def test_a_recipe_reaches_no_model() -> None:
    problem = only_problem(to_toml(recipe_entry(model="gpt-4.1-mini", model_version="x")))
    assert problem == (
        "bank.toml: engine recipe:lint-fix: (entry): a recipe reaches no model: "
        "model and model_version are empty"
    )
    problem = only_problem(to_toml(recipe_entry(protocol="openai-chat")))
    assert "a recipe reaches no model: protocol must be 'none'" in problem


def test_a_language_model_engine_names_its_model_and_protocol() -> None:
    problem = only_problem(to_toml(llm_entry(model_version=DELETE)))
    assert problem == (
        "bank.toml: engine agent:pydantic-ai: (entry): "
        "a language-model engine needs model and model_version"
    )
    problem = only_problem(to_toml(llm_entry(protocol="none")))
    assert "needs a protocol other than 'none'" in problem


def test_an_egress_host_must_be_a_host() -> None:
    problem = only_problem(to_toml(llm_entry(egress_hosts=["https://pypi.org/simple"])))
    assert problem == (
        "bank.toml: engine agent:pydantic-ai: egress_hosts: "
        "'https://pypi.org/simple' is not a host name with an optional :port"
    )


def test_an_empty_approved_use_is_refused() -> None:
    problem = only_problem(to_toml(llm_entry(change_kinds=[])))
    assert problem.startswith("bank.toml: engine agent:pydantic-ai: change_kinds: List should")


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryInvalid) as caught:
        load_registry(tmp_path / "absent.toml")
    (problem,) = caught.value.problems
    assert problem.startswith(f"{tmp_path / 'absent.toml'}: cannot be read:")


def test_a_file_names_itself_in_its_problems(tmp_path: Path) -> None:
    path = write_registry(tmp_path / "r.toml", llm_entry(owner=DELETE))
    with pytest.raises(RegistryInvalid) as caught:
        load_registry(path)
    assert caught.value.problems == (f"{path}: engine agent:pydantic-ai: owner: Field required",)
    assert str(caught.value).startswith(f"engine registry {path} is invalid: ")


def test_the_shipped_registry_reads() -> None:
    registry = load_registry()
    assert registry.source == str(default_registry_path())
    names = {entry.name for entry in registry}
    assert {
        "recipe:dependency-bump",
        "recipe:lint-fix",
        "agent:pydantic-ai",
        "cli:codex",
        "cli:claude-code",
        "cli:mini-swe-agent",
    } <= names


FIELDS = sorted(llm_entry())
VALUES = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(FIELDS), value=VALUES)
def test_any_value_in_any_field_reads_or_is_a_precise_problem(field: str, value: object) -> None:
    try:
        registry = parse_registry(to_toml(llm_entry(**{field: value})), source="bank.toml")
    except RegistryInvalid as err:
        assert err.problems
        for problem in err.problems:
            assert problem.startswith("bank.toml: ")
            assert problem.count(": ") >= 2
    else:
        (entry,) = registry
        assert entry.name.startswith(("agent:", "cli:", "recipe:"))
