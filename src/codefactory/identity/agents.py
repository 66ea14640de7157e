"""Agent identities: who the agent is, who issued it, who owns it.

The skeleton knows one agent from settings; keys, delegation tokens and the agent registry
build on this type.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class AgentUnavailable(Exception):
    """The agent is unknown, suspended or revoked: it never starts a run."""

    def __init__(self, agent_id: str, status: str) -> None:
        super().__init__(f"agent {agent_id} is {status} and may not start runs")
        self.agent_id = agent_id
        self.status = status


@dataclass(frozen=True, kw_only=True)
class AgentIdentity:
    """A governed non-human identity issued by the factory."""

    id: str
    display_name: str
    issuer: str
    owner: str
    status: str = "active"

    @property
    def email(self) -> str:
        """The address its commits carry; `.invalid` so it never routes anywhere."""
        return f"{self.id.replace(':', '-')}@agents.codefactory.invalid"


class StaticAgentDirectory:
    """Agents configured in settings."""

    def __init__(self, agents: Iterable[AgentIdentity]) -> None:
        self._agents = {agent.id: agent for agent in agents}

    def require_active(self, agent_id: str) -> AgentIdentity:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise AgentUnavailable(agent_id, "unknown")
        if agent.status != "active":
            raise AgentUnavailable(agent_id, agent.status)
        return agent
