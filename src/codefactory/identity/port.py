"""The identity port: look up the agent a run acts as."""

from __future__ import annotations

from typing import Protocol

from codefactory.identity.agents import AgentIdentity


class AgentDirectory(Protocol):
    """Registered non-human identities."""

    def require_active(self, agent_id: str) -> AgentIdentity:
        """The agent, if it may start runs; raises `AgentUnavailable` otherwise."""
        ...
