"""Keys as the pinned trust roots allow them: wrappers of the `Issuer` and `AgentKeys` ports.

Verifiers see only pinned public keys; a signing key that is not the pinned one refuses to
sign (`SignerUnavailable` naming `identity.trust_file`), so a key swapped into the data folder
neither signs nor verifies.
"""

from __future__ import annotations

from codefactory.identity.agent_keys import AgentKey, AgentKeys
from codefactory.identity.errors import KeyUnavailable, SignerUnavailable
from codefactory.identity.jwk import thumbprint
from codefactory.identity.port import Issuer, IssuerKey, IssuerSignature
from codefactory.identity.signer import Signer
from codefactory.identity.trust import SETTING, TrustRoots


class PinnedIssuer:
    """The issuer `inner`, publishing and trusting only `trust`'s keys."""

    def __init__(self, inner: Issuer, trust: TrustRoots) -> None:
        self.inner = inner
        self.trust = trust
        self.name = inner.name

    def sign(self, message: bytes) -> IssuerSignature:
        """Sign with `inner`'s current key if it is the pinned current key; refuse (before
        signing) otherwise."""
        self._require_pinned(self.inner.public_keys()[0].kid)
        signed = self.inner.sign(message)
        self._require_pinned(signed.kid)  # it rotated meanwhile: the signature is dropped
        return signed

    def _require_pinned(self, kid: str) -> None:
        if kid != self.trust.current_issuer_kid:
            raise SignerUnavailable(
                SETTING,
                f"the issuer's signing key {kid} is not the pinned current key "
                f"{self.trust.current_issuer_kid or '(none)'}: pin it with "
                "`codefactory identity trust-export` or restore the pinned key",
            )

    def public_keys(self) -> list[IssuerKey]:
        """The pinned issuer keys, current first."""
        return list(self.trust.issuer_keys)

    def rotate(self) -> IssuerKey:
        """Rotate `inner`; the new key signs only once it is pinned."""
        return self.inner.rotate()

    def note_signer(self, message: bytes) -> tuple[bytes, bytes]:
        """Checkpoint signing: (public key, signature) of the pinned current key."""
        signed = self.sign(message)
        if signed.public_key not in self.trust.raw_checkpoint_keys():
            raise SignerUnavailable(
                SETTING, f"the issuer key {signed.kid} is not a pinned checkpoint verifier"
            )
        return signed.public_key, signed.signature

    def raw_public_keys(self) -> list[bytes]:
        """The pinned checkpoint verifier keys."""
        return self.trust.raw_checkpoint_keys()


class PinnedSigner:
    """An agent's signer that signs only while its key is the pinned one."""

    def __init__(self, inner: Signer, pinned: bytes, agent_id: str) -> None:
        self.name = inner.name
        self._inner = inner
        self._pinned = pinned
        self._agent_id = agent_id

    @property
    def key_id(self) -> str:
        """RFC 7638 thumbprint of the pinned key."""
        return thumbprint(self._pinned)

    def public_key(self) -> bytes:
        """The pinned key (checked against the signer's own)."""
        if self._inner.public_key() != self._pinned:
            raise SignerUnavailable(
                SETTING, f"the key of {self._agent_id} ({self.name}) is not its pinned key"
            )
        return self._pinned

    def sign(self, message: bytes) -> bytes:
        """Sign, only with the pinned key."""
        self.public_key()
        return self._inner.sign(message)


class PinnedAgentKeys:
    """Agents' keys as pinned: an agent whose key is not pinned signs nothing."""

    def __init__(self, inner: AgentKeys, trust: TrustRoots) -> None:
        self.inner = inner
        self.trust = trust

    def create(self, agent_id: str, comment: str) -> AgentKey:
        """Make the key where `inner` keeps keys; it signs once pinned."""
        return self.inner.create(agent_id, comment)

    def public(self, agent_id: str) -> AgentKey:
        """The agent's pinned key; `KeyUnavailable` when it is not pinned."""
        line = self.trust.agent_keys.get(agent_id)
        raw = self.trust.agent_public_key(agent_id)
        if line is None or raw is None:
            raise KeyUnavailable(SETTING, f"no pinned key for {agent_id}")
        return AgentKey(public_key=raw, openssh=line)

    def signer(self, agent_id: str) -> Signer:
        """The agent's signer, refusing unless its key is the pinned one."""
        raw = self.trust.agent_public_key(agent_id)
        if raw is None:
            raise SignerUnavailable(
                SETTING, f"{agent_id} has no pinned key: add it with `identity trust-export`"
            )
        return PinnedSigner(self.inner.signer(agent_id), raw, agent_id)

    def sign(self, agent_id: str, message: bytes) -> tuple[AgentKey, bytes]:
        """Sign with the pinned key of the agent."""
        return self.public(agent_id), self.signer(agent_id).sign(message)
