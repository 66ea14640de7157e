"""Identity & delegation: the issuer, the agents runs act as, and their delegation tokens."""

from codefactory.identity.agents import AgentIdentity, AgentStatus, StaticAgentDirectory
from codefactory.identity.errors import (
    AgentInvalid,
    AgentUnavailable,
    DelegationRefused,
    IdentityError,
    KeyUnavailable,
)
from codefactory.identity.port import (
    AgentDirectory,
    Delegation,
    DelegationToken,
    Issuer,
    IssuerKey,
    IssuerSignature,
)

__all__ = [
    "AgentDirectory",
    "AgentIdentity",
    "AgentInvalid",
    "AgentStatus",
    "AgentUnavailable",
    "Delegation",
    "DelegationRefused",
    "DelegationToken",
    "IdentityError",
    "Issuer",
    "IssuerKey",
    "IssuerSignature",
    "KeyUnavailable",
    "StaticAgentDirectory",
]
