"""`audit explain` for runs that never got far, and for packages and logs that were tampered."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from sqlalchemy import text

from codefactory.audit.explain import _commit, _proof, _provenance, explain_run, render_explanation
from codefactory.audit.publishing import checkpoint_when_resting
from codefactory.audit.sql import SqlAuditLog
from codefactory.config import Settings
from codefactory.domain import AuditEvent, RunState
from codefactory.factory import Factory, build_factory
from codefactory.runs.intake import accept_ticket
from tests.acceptance.conftest import TEMPLATE


def factory_at(tmp_path: Path) -> Factory:
    return build_factory(Settings(data_dir=tmp_path / "data"))


def test_a_refused_run_is_explained_without_token_commit_or_package(tmp_path: Path) -> None:
    factory = factory_at(tmp_path)
    ticket = (TEMPLATE / "tickets" / "SVC-103.json").read_bytes()
    run = accept_ticket(factory, payload=ticket, repo=tmp_path)
    assert run.state is RunState.REFUSED
    explanation = explain_run(factory, run.id)
    assert explanation is not None
    assert explanation["delegation"] is None and explanation["commit"] is None
    assert explanation["provenance"] is None and explanation["approvals"] == []
    assert explanation["decisions"][0]["allowed"] is False
    assert all(proof["verified"] for proof in explanation["proofs"])
    console = Console(record=True, width=200)
    render_explanation(console, explanation)
    output = console.export_text()
    assert "decision:   intake modify_ci denied (no-autonomous-ci-changes)" in output
    assert "delegation:" not in output and "commit:" not in output
    assert explain_run(factory, "r-nope") is None


def test_explaining_a_run_of_an_unknown_agent(tmp_path: Path) -> None:
    factory = factory_at(tmp_path)
    ticket = (TEMPLATE / "tickets" / "SVC-103.json").read_bytes()
    run = accept_ticket(factory, payload=ticket, repo=tmp_path)
    with factory.store.engine.begin() as connection:
        connection.execute(text("DELETE FROM agents"))
    explanation = explain_run(factory, run.id)
    assert explanation is not None
    assert explanation["agent"] == {"id": run.agent_id, "status": "unknown"}
    render_explanation(Console(record=True, width=200), explanation)


def test_a_missing_forge_or_a_tampered_provenance_is_named(tmp_path: Path) -> None:
    factory = factory_at(tmp_path)
    agent = factory.identity.agents.require_active(factory.settings.agent_id)
    missing = _commit(factory, "acme/nowhere", {"commit": "a" * 40, "branch": "b"})
    assert missing["signature"] == {
        "status": "E",
        "describe": "no forge repository for acme/nowhere",
    }
    package = tmp_path / "package"
    package.mkdir()
    unreadable = _provenance({"directory": str(package)}, agent.ssh_public_key)
    assert unreadable is not None and unreadable["problem"].startswith("unreadable: ")
    message = b"payload"
    _, signature = factory.identity.agent_keys.sign(agent.id, message)
    envelope = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(message).decode(),
        "signatures": [{"keyid": "k", "sig": base64.b64encode(signature).decode()}],
    }
    (package / "provenance.dsse.json").write_text(json.dumps(envelope))
    forged = _provenance({"directory": str(package)}, agent.ssh_public_key)
    assert forged == {
        "path": str(package / "provenance.dsse.json"),
        "verified": False,
        "problem": "signature does not verify",
    }


def test_a_proof_that_cannot_be_made_is_reported_not_raised(tmp_path: Path) -> None:
    factory = factory_at(tmp_path)
    for i in range(300):
        factory.audit.append(
            AuditEvent(name="step", actor="a", data={"i": i}, at=datetime.now(UTC))
        )
    signed = factory.audit.checkpoint()
    record = factory.audit.events()[5]
    assert _proof(factory.audit, record, signed)["verified"] is True
    with factory.store.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_subtrees"))
    failed = _proof(factory.audit, record, signed)
    assert failed["verified"] is False and "no cached subtree" in failed["problem"]


def test_checkpoints_are_signed_when_runs_rest_and_failures_never_escape(tmp_path: Path) -> None:
    factory = factory_at(tmp_path)
    seen: list[tuple[str, RunState]] = []
    observe = checkpoint_when_resting(factory.audit, lambda r, s, _: seen.append((r, s)))
    factory.audit.append(AuditEvent(name="step", actor="a", at=datetime.now(UTC)))
    observe("r-1", RunState.PROPOSING, "")
    assert (
        factory.store.engine.connect()
        .execute(text("SELECT count(*) FROM audit_checkpoints"))
        .scalar()
        == 0
    )
    observe("r-1", RunState.IN_REVIEW, "")
    observe("r-1", RunState.FAILED, "")
    assert seen == [
        ("r-1", RunState.PROPOSING),
        ("r-1", RunState.IN_REVIEW),
        ("r-1", RunState.FAILED),
    ]
    unsigned = checkpoint_when_resting(SqlAuditLog(factory.store.engine), None)
    unsigned("r-1", RunState.HANDED_OFF, "")  # no key: nothing signed, nothing raised


def test_the_text_form_shows_rejections_and_runs_without_a_trigger(tmp_path: Path) -> None:
    factory = factory_at(tmp_path)
    ticket = (TEMPLATE / "tickets" / "SVC-103.json").read_bytes()
    explanation = explain_run(factory, accept_ticket(factory, payload=ticket, repo=tmp_path).id)
    assert explanation is not None
    explanation["trigger"] = None
    explanation["approvals"] = [
        {"approved": False, "reviewer": "jordan.lee", "at": "2026-01-01", "commit": "c" * 40}
    ]
    console = Console(record=True, width=200)
    render_explanation(console, explanation)
    output = console.export_text()
    assert "rejected by jordan.lee" in output and "trigger:" not in output
