"""Identity & delegation: the issuer, the agents runs act as, and their delegation tokens."""

from codefactory.identity.agents import AgentIdentity, AgentStatus, StaticAgentDirectory
from codefactory.identity.errors import (
    AgentInvalid,
    AgentUnavailable,
    DelegationRefused,
    IdentityError,
    KeyUnavailable,
    SignerUnavailable,
    TrustInvalid,
)
from codefactory.identity.port import (
    AgentDirectory,
    CheckpointIssuer,
    Delegation,
    DelegationToken,
    Issuer,
    IssuerKey,
    IssuerSignature,
)
from codefactory.identity.signer import Signer

__all__ = [
    "AgentDirectory",
    "AgentIdentity",
    "AgentInvalid",
    "AgentStatus",
    "AgentUnavailable",
    "CheckpointIssuer",
    "Delegation",
    "DelegationRefused",
    "DelegationToken",
    "IdentityError",
    "Issuer",
    "IssuerKey",
    "IssuerSignature",
    "KeyUnavailable",
    "Signer",
    "SignerUnavailable",
    "StaticAgentDirectory",
    "TrustInvalid",
]
