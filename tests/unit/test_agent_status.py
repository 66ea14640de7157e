"""`signed_status`: what an agent's lifecycle events prove, with a stand-in verifier that
accepts statements by digest (the real one, ssh-keygen and all, is exercised in
tests/integration/test_insider_governance.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from codefactory.identity.agent_status import LifecycleEvent, signed_status
from codefactory.identity.agents import AgentStatus
from codefactory.identity.directory import Person
from codefactory.identity.statements import StatementRefused, VerifiedStatement

T0 = datetime(2026, 11, 30, tzinfo=UTC)
AGENT = "agent:bot"


def verify(data: Mapping[str, Any], action: str) -> VerifiedStatement:
    said = data.get("statement")
    if not isinstance(said, dict) or said.get("action") != action:
        raise StatementRefused("the event carries no signed statement")
    return VerifiedStatement(person=Person(id="sam", name="Sam"), fields=said, body=b"",
                             signature="", digest=str(said["digest"]), fingerprint="",
                             allowed_signers_line="")  # fmt: skip


def event(seq: int, name: str, actor: str = "user:sam", **data: Any) -> LifecycleEvent:
    return LifecycleEvent(seq=seq, name=name, actor=actor, at=T0 + timedelta(seconds=seq),
                          data={"agent_id": AGENT, **data})  # fmt: skip


def said(action: str, digest: str, minute: int) -> dict[str, str]:
    at = (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"action": action, "digest": digest, "at": at}


def status(*events: LifecycleEvent, default: str | None = None) -> AgentStatus | None:
    return signed_status(events, agent_id=AGENT, default_id=default, verify=verify).status


def test_only_signed_activations_count_and_the_factory_registers_its_default_agent() -> None:
    created = event(0, "agent-created", "factory", status="active")
    assert status(created, default=AGENT) is AgentStatus.ACTIVE
    assert status(created) is None  # not the default agent: an unsigned active creation
    assert status(event(0, "agent-created", status="created")) is AgentStatus.CREATED
    suspended = event(1, "agent-suspended")  # unsigned: still takes authority away
    assert status(created, suspended, default=AGENT) is AgentStatus.SUSPENDED
    unsigned = event(2, "agent-activated")
    assert status(created, suspended, unsigned, default=AGENT) is AgentStatus.SUSPENDED
    again = event(3, "agent-created", "factory", status="active")  # a second creation
    assert status(created, suspended, again, default=AGENT) is AgentStatus.SUSPENDED


def test_moves_follow_the_statements_time_and_a_replay_counts_for_nothing() -> None:
    created = event(0, "agent-created", status="active", statement=said("agent-activate", "a", 0))
    suspend = event(1, "agent-suspended", statement=said("agent-suspend", "s", 5))
    assert status(created, suspend) is AgentStatus.SUSPENDED
    replayed = event(2, "agent-activated", statement=said("agent-activate", "a", 0))
    assert status(created, suspend, replayed) is AgentStatus.SUSPENDED
    backdated = event(3, "agent-activated", statement=said("agent-activate", "b", 1))
    assert status(created, suspend, backdated) is AgentStatus.SUSPENDED  # signed before
    later = event(4, "agent-activated", statement=said("agent-activate", "c", 9))
    assert status(created, suspend, later) is AgentStatus.ACTIVE
    revoke = event(5, "agent-revoked", statement=said("agent-revoke", "r", 7))
    assert status(created, suspend, revoke, later) is AgentStatus.REVOKED  # final
