"""What the factory publishes so others can check its work with standard tools.

- A JWK set (RFC 7517 §5) of the issuer's keys, current and retired, which verify delegation
  tokens and audit checkpoints, and of every agent's key, which verify its commits and
  provenance; each entry says whose it is.
- A git `allowed_signers` file (ssh-keygen(1) ALLOWED SIGNERS) so plain `git verify-commit`
  checks every factory commit. A revoked agent's key gets `valid-before` its revocation.

With pinned trust roots (`identity.trust_file`) both publish only pinned keys: the issuer's
from the trust file, and each agent's pinned key (an agent without one is left out), whatever
`keys.json` or the store in the data folder say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from codefactory.identity.agents import AgentIdentity, AgentStatus
from codefactory.identity.jwk import okp_jwk
from codefactory.identity.port import IssuerKey
from codefactory.identity.trust import TrustRoots


def agent_public_key(agent: AgentIdentity) -> bytes:
    """The raw Ed25519 key in the agent's OpenSSH public key line."""
    key = serialization.load_ssh_public_key(agent.ssh_public_key.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"agent {agent.id} has no ssh-ed25519 key")
    return key.public_bytes_raw()


def pinned_agents(agents: Sequence[AgentIdentity], trust: TrustRoots | None) -> list[AgentIdentity]:
    """`agents` with their pinned keys (unpinned agents dropped); all of them when unpinned."""
    if trust is None:
        return list(agents)
    return [
        replace(agent, ssh_public_key=trust.agent_keys[agent.id])
        for agent in agents
        if agent.id in trust.agent_keys
    ]


def pinned_ssh_key(agent: AgentIdentity | None, trust: TrustRoots | None) -> str:
    """The agent's SSH key a verifier may trust: its pinned key (empty when not pinned) with
    a trust file, else the store's copy; empty for no agent."""
    if agent is None:
        return ""
    return trust.agent_keys.get(agent.id, "") if trust is not None else agent.ssh_public_key


def jwks(
    issuer: str,
    keys: Sequence[IssuerKey],
    agents: Sequence[AgentIdentity],
    *,
    trust: TrustRoots | None = None,
) -> dict[str, Any]:
    """The JWK set served at `/.well-known/jwks.json`; with `trust`, only pinned keys."""
    if trust is not None:
        keys = trust.issuer_keys
    agents = pinned_agents(agents, trust)
    entries = [
        okp_jwk(
            key.public_key,
            iss=issuer,
            key_ops=["verify"],
            status="current" if key.retired_at is None else "retired",
        )
        for key in keys
    ]
    entries += [
        okp_jwk(
            agent_public_key(agent), sub=agent.id, key_ops=["verify"], status=agent.status.value
        )
        for agent in agents
        if agent.ssh_public_key
    ]
    return {"keys": entries}


def allowed_signers(agents: Sequence[AgentIdentity], *, trust: TrustRoots | None = None) -> str:
    """A git `allowed_signers` file: one line per agent, principal = its commit email; with
    `trust`, only agents' pinned keys."""
    agents = pinned_agents(agents, trust)
    lines = ["# Code Factory agents' commit-signing keys (git gpg.ssh.allowedSignersFile)"]
    for agent in agents:
        if not agent.ssh_public_key:
            continue
        options = 'namespaces="git"'
        if agent.status is AgentStatus.REVOKED and agent.updated_at is not None:
            options += f',valid-before="{agent.updated_at:%Y%m%d%H%M%S}Z"'
        keytype, blob = agent.ssh_public_key.split()[:2]
        lines.append(f"{agent.email} {options} {keytype} {blob}")
    return "\n".join(lines) + "\n"
