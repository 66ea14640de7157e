"""Identity & delegation: the issuer, the agents runs act as, and their delegation tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "AgentIdentity": "codefactory.identity.agents",
        "AgentStatus": "codefactory.identity.agents",
        "StaticAgentDirectory": "codefactory.identity.agents",
        "AgentInvalid": "codefactory.identity.errors",
        "AgentUnavailable": "codefactory.identity.errors",
        "DelegationRefused": "codefactory.identity.errors",
        "IdentityError": "codefactory.identity.errors",
        "KeyUnavailable": "codefactory.identity.errors",
        "SignerUnavailable": "codefactory.identity.errors",
        "TrustInvalid": "codefactory.identity.errors",
        "AgentDirectory": "codefactory.identity.port",
        "CheckpointIssuer": "codefactory.identity.port",
        "Delegation": "codefactory.identity.port",
        "DelegationToken": "codefactory.identity.port",
        "Issuer": "codefactory.identity.port",
        "IssuerKey": "codefactory.identity.port",
        "IssuerSignature": "codefactory.identity.port",
        "Signer": "codefactory.identity.signer",
    },
)
