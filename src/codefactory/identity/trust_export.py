"""`codefactory identity trust-export`: the trust roots of the keys the factory has now.

An installer runs it once (and after each rotation or new agent), reviews the output and
pins it as `identity.trust_file` outside the data folder. With `identity.signer = "pkcs11"`
it generates the issuer's and the default agent's keys in the token when they are missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.audit.note import NoteVerifier
from codefactory.identity.agent_keys import AgentKeyFiles, AgentKeys
from codefactory.identity.trust import TrustRoots

if TYPE_CHECKING:
    from codefactory.config import Settings


def export_trust(settings: Settings, *, origin: str) -> TrustRoots:
    """The trust roots of the current keys (issuer current and retired, checkpoint note
    verifiers named `origin`, every agent with a key, the default agent's made if missing)."""
    from codefactory.identity.pkcs11_keys import TokenIssuer
    from codefactory.identity.services import unpinned_agent_keys, unpinned_issuer

    issuer = unpinned_issuer(settings)
    if isinstance(issuer, TokenIssuer):
        issuer.ensure_key()
    keys = issuer.public_keys()
    agent_keys = unpinned_agent_keys(settings)
    agent_keys.create(settings.agent_id, comment=settings.agent_id)
    agents = {agent_id: agent_keys.public(agent_id).openssh for agent_id in _agent_ids(agent_keys)}
    return TrustRoots(
        issuer=issuer.name,
        signer=settings.identity.signer,
        issuer_keys=tuple(keys),
        checkpoint_keys=tuple(
            NoteVerifier(name=origin, public_key=key.public_key).encoded() for key in keys
        ),
        agent_keys=agents,
    )


def _agent_ids(keys: AgentKeys) -> list[str]:
    from codefactory.identity.pkcs11_keys import TokenAgentKeys

    if isinstance(keys, TokenAgentKeys):
        return keys.agent_ids()
    if isinstance(keys, AgentKeyFiles) and keys.folder.is_dir():
        return sorted(
            "agent:" + folder.name.removeprefix("agent_")
            for folder in keys.folder.iterdir()
            if (folder / "id_ed25519.pub").is_file()
        )
    return []
