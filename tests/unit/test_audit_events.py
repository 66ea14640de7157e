"""Typed audit events: every kind round-trips through its stored form, names are unique,
an unknown or misshapen record decodes to `UnknownEvent`, and a typed event is the same
leaf (same canonical bytes, same hash) as the event written the old way, by name and data."""

from __future__ import annotations

import hashlib
import json
import types
import typing
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import pytest

from codefactory.audit.events import (
    KINDS,
    CommitRequested,
    FindingWaived,
    ModelCalled,
    PullRequestOpened,
    RunStateChanged,
    advisories,
    engines,
    identity,
    intake,
    operations,
    regulated,
    review,
    runs,
    typed,
)
from codefactory.audit.leaf import stored_leaf
from codefactory.audit.port import AuditRecord
from codefactory.domain import ENVELOPE, AuditEvent, UnknownEvent

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def sample(hint: Any) -> Any:
    """A JSON value of the type `hint`, for building an instance of any kind."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return sample(next(a for a in typing.get_args(hint) if a is not type(None)))
    if origin is list:
        return [sample(typing.get_args(hint)[0])]
    if origin is dict:
        key, value = typing.get_args(hint)
        return {"k": sample(value)}
    return {str: "s", int: 3, bool: True, float: 0.25}.get(hint, {"x": "y"})


def instance(kind: type[AuditEvent]) -> AuditEvent:
    hints = typing.get_type_hints(kind)
    values = {f.name: sample(hints[f.name]) for f in fields(kind) if f.name not in ENVELOPE}
    return kind(actor="factory", run_id="r-1", at=T0, **values)


def stored(event: AuditEvent, seq: int = 7) -> AuditRecord:
    """The record the log gives back for `event` (data as JSON holds it: a copy)."""
    return AuditRecord(
        seq=seq,
        name=event.name,
        actor=event.actor,
        run_id=event.run_id,
        at=event.at,
        data=dict(event.data),
        leaf_hash="00" * 32,
    )


@pytest.mark.parametrize("kind", sorted(KINDS.values(), key=lambda k: k.NAME), ids=str)
def test_every_kind_round_trips_through_its_stored_record(kind: type[AuditEvent]) -> None:
    event = instance(kind)
    assert event.name == kind.NAME
    assert set(event.data) == {f.name for f in fields(kind)} - ENVELOPE
    back = typed(stored(event))
    assert type(back) is kind
    assert back == event


def test_names_are_unique_kebab_case_and_every_class_is_registered() -> None:
    classes = [
        value
        for module in (runs, intake, review, regulated, engines, operations, identity, advisories)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, AuditEvent) and value.NAME
    ]
    names = [kind.NAME for kind in classes]
    assert len(names) == len(set(names)) == len(KINDS)
    assert all(KINDS[kind.NAME] is kind for kind in classes)
    assert all(name and name == name.lower() and " " not in name for name in names)


def test_an_unknown_name_decodes_to_an_unknown_event_with_its_name_and_data() -> None:
    record = stored(UnknownEvent(kind="made-by-a-later-version", actor="a", payload={"n": 1}))
    event = typed(record)
    assert isinstance(event, UnknownEvent)
    assert (event.name, event.data, event.actor) == ("made-by-a-later-version", {"n": 1}, "a")


def test_an_older_shape_of_a_known_kind_decodes_with_its_missing_fields_empty() -> None:
    older = {"branch": "factory/r-1", "base_commit": "abc", "by": "a later version"}
    record = stored(UnknownEvent(kind=CommitRequested.NAME, actor="agent", payload=older))
    event = typed(record)
    assert event == CommitRequested(
        actor="agent", at=event.at, branch="factory/r-1", base_commit="abc", paths=[]
    )
    opened = typed(stored(UnknownEvent(kind="pull-request-opened", actor="user:priya")))
    assert isinstance(opened, PullRequestOpened)
    assert (opened.sponsor, opened.number, "sponsor" in opened.data) == (None, "", False)
    spent = typed(stored(UnknownEvent(kind="model-called", actor="gateway")))
    assert isinstance(spent, ModelCalled) and (spent.count, spent.cost_usd) == (1, 0.0)


def test_a_key_some_writers_omit_stays_absent_and_a_none_that_was_written_stays() -> None:
    moved = RunStateChanged(actor="factory", previous="received", state="authorized", reason="")
    assert moved.data == {"previous": "received", "state": "authorized", "reason": ""}
    packaged = RunStateChanged(
        actor="factory", previous="verified", state="packaged", reason="", branch="factory/r-1"
    )
    assert packaged.data["branch"] == "factory/r-1" and "head_commit" not in packaged.data
    waived = FindingWaived(
        actor="user:ana", check="lint", rule="E1", path="a.py", line=1, fingerprint="f",
        severity="low", approver="ana", reason="known", expires=None,
    )  # fmt: skip
    assert waived.data["expires"] is None


def test_a_typed_event_is_the_same_leaf_as_the_event_written_by_name_and_data() -> None:
    typed_event = CommitRequested(
        actor="agent:lint-fixer",
        run_id="r-0123456789ab",
        at=T0,
        branch="factory/r-0123456789ab",
        base_commit="4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        paths=["src/app.py", "README.md"],
    )
    old_way = UnknownEvent(  # what `tx.audit("commit-requested", ...)` wrote before
        kind="commit-requested",
        actor="agent:lint-fixer",
        run_id="r-0123456789ab",
        at=T0,
        payload={
            "branch": "factory/r-0123456789ab",
            "base_commit": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
            "paths": ["src/app.py", "README.md"],
        },
    )
    new, old = stored_leaf(41, typed_event), stored_leaf(41, old_way)
    assert new == old
    assert new.leaf_hash == PINNED_COMMIT_REQUESTED


def test_a_state_change_without_updates_is_the_same_leaf_as_before() -> None:
    typed_event = RunStateChanged(
        actor="policy", run_id="r-1", at=T0, previous="received", state="refused", reason="no"
    )
    old_way = UnknownEvent(
        kind="run-state-changed",
        actor="policy",
        run_id="r-1",
        at=T0,
        payload={"previous": "received", "state": "refused", "reason": "no"},
    )
    assert stored_leaf(3, typed_event) == stored_leaf(3, old_way)
    assert stored_leaf(3, typed_event).leaf_hash == PINNED_STATE_CHANGED


def test_the_pinned_leaf_is_sha256_of_the_rfc_8785_record_computed_with_hashlib_alone() -> None:
    record = {
        "seq": 41,
        "name": "commit-requested",
        "actor": "agent:lint-fixer",
        "run_id": "r-0123456789ab",
        "at": "2026-11-30T09:00:00.000000Z",
        "data": {
            "branch": "factory/r-0123456789ab",
            "base_commit": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
            "paths": ["src/app.py", "README.md"],
        },
    }
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()  # ASCII only
    assert hashlib.sha256(b"\x00" + canonical).hexdigest() == PINNED_COMMIT_REQUESTED


# RFC 9162 §2.1.1 leaf hashes of the two events above, as written before the events were typed.
PINNED_COMMIT_REQUESTED = "71e25a061af2d1492f26b1193d6eff384c1800d6de64225d5445c62330d599c0"
PINNED_STATE_CHANGED = "943e538e86f8400811a1947418636629aea23116f70e7d7810fb28cf9162ab68"
