"""Typed audit events against what the real loop stores: every event a lint run writes whose
name has a class decodes to that class and writes back exactly the data stored (same keys,
same values), so the classes and the leaves cannot drift apart; the log still verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from codefactory.audit.events import KINDS, CommitRequested, RunStateChanged, typed
from codefactory.config import Settings
from codefactory.domain import RunState, UnknownEvent
from codefactory.factory import Factory, build_factory
from codefactory.runs.tickets import accept_ticket
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service

pytestmark = pytest.mark.usefixtures("bwrap_available")


@pytest.fixture
def factory(tmp_path: Path, uv_cache: Path) -> Factory:
    data_dir = data_dir_sharing_cache(tmp_path / "data", uv_cache)
    return build_factory(Settings(data_dir=data_dir))


def test_every_event_of_a_lint_run_decodes_to_its_class_and_writes_back_its_data(
    factory: Factory, tmp_path: Path
) -> None:
    repo = sample_service(tmp_path / "sample-service")
    payload = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()
    run = accept_ticket(factory, payload=payload, repo=repo)
    assert run.state is RunState.IN_REVIEW, run.reason
    records = factory.audit.events()
    typed_names = set()
    for record in records:
        event = typed(record)
        if record.name in KINDS:
            assert type(event) is KINDS[record.name], record.name
            assert event.data == record.data, record.name
            typed_names.add(record.name)
        else:
            assert isinstance(event, UnknownEvent) and event.data == record.data
        assert (event.name, event.actor, event.run_id, event.at) == (
            record.name, record.actor, record.run_id, record.at
        )  # fmt: skip
    assert {
        "trigger-received", "run-created", "run-state-changed", "policy-decided",
        "context-gathered", "engine-proposed", "check-completed", "commit-requested",
        "commit-created", "package-built", "scope-checked", "egress-attempted",
    } <= typed_names  # fmt: skip
    moves = [e for e in map(typed, factory.audit.events(run.id)) if isinstance(e, RunStateChanged)]
    packaged = next(e for e in moves if e.state == "packaged")
    assert packaged.branch == f"factory/{run.id}" and packaged.head_commit == run.head_commit
    assert factory.audit.verify().ok


def test_an_event_appended_by_name_and_data_is_the_same_leaf_and_decodes_typed(
    factory: Factory,
) -> None:
    with factory.store.atomic() as tx:
        by_name = tx.append(
            UnknownEvent(
                kind="commit-requested",
                actor="agent",
                run_id="r-1",
                payload={"branch": "b", "base_commit": "c", "paths": []},
            )
        )
        typed_seq = tx.append(
            CommitRequested(actor="agent", run_id="r-1", branch="b", base_commit="c", paths=[])
        )
    old, new = (factory.audit.events("r-1")[i] for i in (0, 1))
    assert (old.seq, new.seq) == (by_name, typed_seq)
    assert (old.name, old.data) == (new.name, new.data)
    assert typed(old) == CommitRequested(
        actor="agent", run_id="r-1", at=old.at, branch="b", base_commit="c", paths=[]
    )
