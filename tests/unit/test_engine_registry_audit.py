"""Changing the registry is an audit event: snapshots, digests and the changes between them."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codefactory.audit.canonical import canonical_json
from codefactory.engines.registry import load_registry, parse_registry
from codefactory.engines.registry_audit import (
    REGISTRY_CHANGED,
    REGISTRY_LOADED,
    ChangeType,
    EntryChange,
    registry_snapshot,
    registry_update,
)
from tests.unit.test_engine_registry_support import (
    DELETE,
    llm_entry,
    recipe_entry,
    registry_of,
    to_toml,
)


def stored(data: dict[str, Any]) -> dict[str, Any]:
    """Event data as the audit log gives it back: RFC 8785 JSON, read again."""
    loaded: dict[str, Any] = json.loads(canonical_json(data))
    return loaded


def test_the_event_names() -> None:
    assert (REGISTRY_LOADED, REGISTRY_CHANGED) == (
        "engine-registry-loaded",
        "engine-registry-changed",
    )


def test_first_load_adds_every_entry() -> None:
    registry = registry_of(llm_entry(), recipe_entry())
    update = registry_update(None, registry)
    assert update is not None
    assert update.previous_digest == ""
    assert [(c.engine, c.change, c.fields) for c in update.changes] == [
        ("agent:pydantic-ai", ChangeType.ADDED, ()),
        ("recipe:lint-fix", ChangeType.ADDED, ()),
    ]
    assert update.loaded == registry_snapshot(registry)
    assert update.changes[0].digest == update.loaded["entries"]["agent:pydantic-ai"]["digest"]


def test_the_snapshot_holds_every_entry_in_full() -> None:
    snapshot = registry_snapshot(registry_of(llm_entry()))
    assert snapshot["format"] == 1 and snapshot["source"] == "test.toml"
    assert snapshot["digest"].startswith("sha256:") and len(snapshot["digest"]) == 71
    entry = snapshot["entries"]["agent:pydantic-ai"]["entry"]
    assert entry["budget"]["requests"] == 40 and entry["budget"]["wall_s"] == 600
    assert entry["next_review"] == "2027-06-30"
    assert entry["repositories"] == ["payments-*", "web"]
    # Every field, defaults included, so that writing a default out changes nothing.
    assert entry["egress_hosts"] == [] and entry["status_reason"] == ""


def test_unchanged_after_a_round_trip_through_the_audit_log() -> None:
    registry = registry_of(llm_entry(), recipe_entry())
    first = registry_update(None, registry)
    assert first is not None
    assert registry_update(stored(first.loaded), registry) is None


def test_order_formatting_and_written_defaults_are_not_changes() -> None:
    before = registry_of(llm_entry(), recipe_entry())
    after = parse_registry(
        "# reordered, with defaults written out\n"
        + to_toml(
            recipe_entry(egress_hosts=[], max_rounds=2),
            llm_entry(repositories=["payments-*", "web"]),
        ).replace(" = ", "   =   "),
        source="elsewhere.toml",
    )
    assert registry_snapshot(before)["digest"] == registry_snapshot(after)["digest"]
    assert registry_update(stored(registry_snapshot(before)), after) is None


def test_an_integer_and_the_same_float_are_the_same_entry() -> None:
    a = registry_of(llm_entry(budget={**llm_entry()["budget"], "cost_usd": 2}))
    b = registry_of(llm_entry(budget={**llm_entry()["budget"], "cost_usd": 2.0}))
    assert registry_snapshot(a)["digest"] == registry_snapshot(b)["digest"]


def test_a_suspension_is_a_change_of_status_fields() -> None:
    before = stored(registry_snapshot(registry_of(llm_entry(), recipe_entry())))
    after = registry_of(
        llm_entry(status="suspended", status_reason="provider incident"), recipe_entry()
    )
    update = registry_update(before, after)
    assert update is not None
    (change,) = update.changes
    assert change == EntryChange(
        engine="agent:pydantic-ai",
        change=ChangeType.CHANGED,
        fields=("status", "status_reason"),
        digest=update.loaded["entries"]["agent:pydantic-ai"]["digest"],
        previous_digest=before["entries"]["agent:pydantic-ai"]["digest"],
    )
    assert update.previous_digest == before["digest"]
    assert update.changed_data() == {
        "source": "test.toml",
        "digest": update.loaded["digest"],
        "previous_digest": before["digest"],
        "changes": [change.as_dict()],
    }
    assert update.changed_data()["changes"][0]["change"] == "changed"


def test_nested_fields_are_named_by_their_path() -> None:
    before = stored(registry_snapshot(registry_of(llm_entry())))
    prices = {
        "gpt-4.1-mini": {"input_per_mtok": 0.5, "output_per_mtok": 1.6},
        "gpt-4.1": {"input_per_mtok": 2, "output_per_mtok": 8},
    }
    budget = {**llm_entry()["budget"], "requests": 80}
    update = registry_update(before, registry_of(llm_entry(prices=prices, budget=budget)))
    assert update is not None
    (change,) = update.changes
    assert change.fields == (
        "budget.requests",
        "prices.gpt-4.1",
        "prices.gpt-4.1-mini.input_per_mtok",
    )


def test_added_and_removed_entries() -> None:
    before = stored(registry_snapshot(registry_of(llm_entry(), recipe_entry())))
    after = registry_of(llm_entry(), llm_entry(name="cli:codex"))
    update = registry_update(before, after)
    assert update is not None
    assert [(c.engine, c.change) for c in update.changes] == [
        ("cli:codex", ChangeType.ADDED),
        ("recipe:lint-fix", ChangeType.REMOVED),
    ]
    removed = update.changes[1]
    assert removed.digest == "" and removed.previous_digest.startswith("sha256:")
    assert removed.as_dict() == {
        "engine": "recipe:lint-fix",
        "change": "removed",
        "fields": [],
        "digest": "",
        "previous_digest": removed.previous_digest,
    }


@pytest.mark.parametrize(
    ("previous", "message"),
    [
        ({"digest": "sha256:00"}, "is not a registry snapshot"),
        ({"format": 2, "digest": "x", "entries": {}}, "snapshot format 2"),
        ({"format": 1, "digest": "x", "entries": {"a": {"digest": "y"}}}, "entries.a.entry"),
    ],
)
def test_a_previous_event_that_is_not_a_snapshot(previous: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        registry_update(previous, registry_of(llm_entry()))


def test_the_shipped_registry_snapshot_is_recordable() -> None:
    update = registry_update(None, load_registry())
    assert update is not None
    # The audit log writes RFC 8785 JSON: every value must have a JSON form.
    assert canonical_json(update.loaded) and canonical_json(update.changed_data())


EDITS: dict[str, Any] = {
    "engine_version": "codefactory 0.2.0",
    "model_version": "2025-06-01",
    "status": "suspended",
    "change_kinds": ["general_change"],
    "data_classes": ["public"],
    "materiality": "high",
    "validator": "user:vera",
    "validated_on": date(2026, 11, 15),
    "validation_evidence": ["run-9"],
    "known_limitations": [],
    "tools": ["finish"],
    "max_rounds": 3,
    "next_review": date(2027, 3, 31),
    "prohibited_repositories": DELETE,
}


@settings(max_examples=60, deadline=None)
@given(st.sets(st.sampled_from(sorted(EDITS)), min_size=1))
def test_the_changed_fields_are_exactly_the_edited_ones(edited: set[str]) -> None:
    before = stored(registry_snapshot(registry_of(llm_entry())))
    after = registry_of(llm_entry(**{field: EDITS[field] for field in edited}))
    update = registry_update(before, after)
    assert update is not None
    (change,) = update.changes
    assert change.change is ChangeType.CHANGED
    assert change.fields == tuple(sorted(edited))
