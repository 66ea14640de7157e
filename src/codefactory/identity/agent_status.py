"""An agent's status as its signed governance events say, not as its database row says.

The `agents` row is what an insider with write access to the data folder can edit; the
audit log is append-only and witnessed, but appending is not authorizing. So the status an
agent may act on is derived from its lifecycle events (`agent-created`, `agent-activated`,
`agent-suspended`, `agent-revoked`), each counting only with the governance statement that
authorized it, verified again against the directory (`signed_events.reverify`: role
`security`, action and target matching, not a replay), applied in the order of the
statements' `at`. The factory's own act counts unsigned: the first `agent-created` of the
default agent, by `factory`. An agent created `--pending` is `created` without a signature
(it cannot act). A suspension or revocation without a statement counts too (at the event's
time): it only takes authority away, as editing the row could. Everything else unsigned, or
a second `agent-created`, is ignored and named.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from codefactory.identity.agents import STATUS_MOVES, AgentStatus
from codefactory.identity.statements import StatementRefused, VerifiedStatement

CREATED_EVENT = "agent-created"
MOVES = {
    "agent-activated": (AgentStatus.ACTIVE, "agent-activate"),
    "agent-suspended": (AgentStatus.SUSPENDED, "agent-suspend"),
    "agent-revoked": (AgentStatus.REVOKED, "agent-revoke"),
}
LIFECYCLE_EVENTS = (CREATED_EVENT, *MOVES)
DISPUTED_EVENT = "agent-status-disputed"

Verify = Callable[[Mapping[str, Any], str], VerifiedStatement]
"""Checks the statement an event's data carries for a governance action (`agent-activate`…);
`StatementRefused` when it does not count."""


@dataclass(frozen=True, kw_only=True)
class LifecycleEvent:
    """One stored lifecycle event of one agent."""

    seq: int
    name: str
    actor: str
    at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class SignedStatus:
    """What the verified events say: the status (None: never created) and what was ignored."""

    status: AgentStatus | None
    ignored: tuple[str, ...] = ()


def signed_status(
    events: Sequence[LifecycleEvent], *, agent_id: str, default_id: str | None, verify: Verify
) -> SignedStatus:
    """The status `events` (one agent's, in log order) prove; see the module docstring."""
    ignored: list[str] = []
    status: AgentStatus | None = None
    moves: list[tuple[datetime, int, AgentStatus]] = []
    seen: set[str] = set()
    for event in events:
        try:
            if event.name == CREATED_EVENT:
                if status is not None:
                    raise StatementRefused("the agent was created before")
                status = _created(event, agent_id, default_id, verify, seen)
            elif event.name in MOVES:
                target, action = MOVES[event.name]
                if target is not AgentStatus.ACTIVE and "statement" not in event.data:
                    moves.append((event.at, event.seq, target))  # takes authority away only
                    continue
                verified = verify(event.data, action)
                if verified.digest in seen:
                    raise StatementRefused("its statement was used before (replay)")
                seen.add(verified.digest)
                moves.append((_at(verified), event.seq, target))
        except StatementRefused as err:
            ignored.append(f"{event.name} at seq {event.seq}: {err.reason}")
    if status is None:
        return SignedStatus(status=None, ignored=tuple(ignored))
    for _, seq, target in sorted(moves, key=lambda move: (move[0], move[1])):
        if target in STATUS_MOVES[status]:
            status = target
        else:
            ignored.append(f"seq {seq}: {status.value} cannot become {target.value}")
    return SignedStatus(status=status, ignored=tuple(ignored))


def _created(
    event: LifecycleEvent, agent_id: str, default_id: str | None, verify: Verify, seen: set[str]
) -> AgentStatus:
    said = event.data.get("status")
    if said == AgentStatus.CREATED.value:
        return AgentStatus.CREATED  # cannot act until a signed activation
    if said != AgentStatus.ACTIVE.value:
        raise StatementRefused(f"an agent is not created {said!r}")
    if "statement" not in event.data and agent_id == default_id and event.actor == "factory":
        return AgentStatus.ACTIVE  # the factory's own default agent, registered on first use
    verified = verify(event.data, "agent-activate")
    seen.add(verified.digest)
    return AgentStatus.ACTIVE


def _at(verified: VerifiedStatement) -> datetime:
    from codefactory.identity.signed_events import statement_at

    return statement_at(verified)
