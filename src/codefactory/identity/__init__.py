"""Identity & delegation: the non-human identities runs are attributed to."""

from codefactory.identity.agents import AgentIdentity, AgentUnavailable, StaticAgentDirectory
from codefactory.identity.port import AgentDirectory

__all__ = ["AgentDirectory", "AgentIdentity", "AgentUnavailable", "StaticAgentDirectory"]
