"""Agent identities: who the agent is, who issued it, who answers for it, what it may run.

An agent is a registered non-human identity (issue 4): it never borrows a human's token.
Its lifecycle is `created → active ⇄ suspended`, and `revoked` from any of them, for good.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from codefactory.identity.errors import AgentInvalid, AgentUnavailable

__all__ = ["AgentIdentity", "AgentStatus", "AgentUnavailable", "StaticAgentDirectory"]

AGENT_ID = re.compile(r"agent:[a-z0-9][a-z0-9._-]{0,100}")


class AgentStatus(enum.StrEnum):
    """Where an agent is in its lifecycle; only `active` agents act."""

    CREATED = "created"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


# status → statuses it may move to; `revoked` is final.
STATUS_MOVES: dict[AgentStatus, frozenset[AgentStatus]] = {
    AgentStatus.CREATED: frozenset({AgentStatus.ACTIVE, AgentStatus.REVOKED}),
    AgentStatus.ACTIVE: frozenset({AgentStatus.SUSPENDED, AgentStatus.REVOKED}),
    AgentStatus.SUSPENDED: frozenset({AgentStatus.ACTIVE, AgentStatus.REVOKED}),
    AgentStatus.REVOKED: frozenset(),
}


def check_agent_id(agent_id: str) -> str:
    """`agent:<name>`, lower case: it becomes a folder name, a git principal and a JWT claim."""
    if not AGENT_ID.fullmatch(agent_id):
        raise AgentInvalid(
            f"invalid agent id {agent_id!r}: use agent:<name> with a-z, 0-9, '.', '_' or '-'"
        )
    return agent_id


@dataclass(frozen=True, kw_only=True)
class AgentIdentity:
    """A governed non-human identity issued by the factory."""

    id: str
    display_name: str
    issuer: str
    owner: str
    """The accountable human."""
    engines: tuple[str, ...] = ("recipe:*",)
    """Engine names (or `fnmatch` patterns) the agent may run."""
    status: AgentStatus = AgentStatus.ACTIVE
    status_reason: str = ""
    ssh_public_key: str = ""
    """Its commit- and provenance-signing key, an OpenSSH `ssh-ed25519` line."""
    created_at: datetime | None = None
    updated_at: datetime | None = field(default=None, compare=False)

    @property
    def email(self) -> str:
        """The address its commits carry; `.invalid` so it never routes anywhere."""
        return f"{self.id.replace(':', '-')}@agents.codefactory.invalid"

    def may_use(self, engine: str) -> bool:
        """Whether the agent may run the engine named `engine`."""
        return any(fnmatch.fnmatchcase(engine, pattern) for pattern in self.engines)


class StaticAgentDirectory:
    """Agents given in code (tests, embedding); the store-backed registry is the default."""

    def __init__(self, agents: Iterable[AgentIdentity]) -> None:
        self._agents = {agent.id: agent for agent in agents}

    def require_active(self, agent_id: str) -> AgentIdentity:
        """The agent if it is active; AgentUnavailable otherwise."""
        agent = self._agents.get(agent_id)
        if agent is None:
            raise AgentUnavailable(agent_id, "unknown")
        if agent.status is not AgentStatus.ACTIVE:
            raise AgentUnavailable(agent_id, agent.status.value)
        return agent
