"""The issuer's and the agents' keys in a PKCS#11 token (`identity.signer = "pkcs11"`).

The issuer's current key is labelled `identity.pkcs11.issuer_label`; rotation relabels it
`<label>.retired.<kid>` and generates a new one in the token. An agent's key is labelled
`<agent_label_prefix><agent id>`. Nothing here reads or writes a private key: the token signs.
"""

from __future__ import annotations

from codefactory.identity.agent_keys import AgentKey
from codefactory.identity.agents import check_agent_id
from codefactory.identity.pkcs11 import Pkcs11Keyring, Pkcs11Signer
from codefactory.identity.port import IssuerKey, IssuerSignature
from codefactory.identity.signer_ssh import openssh_public_key

RETIRED = ".retired."


class TokenIssuer:
    """An `Issuer` whose keys are in a PKCS#11 token; the first key is made by
    `ensure_key` (`codefactory identity trust-export`), never on a guess while signing."""

    def __init__(self, keyring: Pkcs11Keyring, *, name: str) -> None:
        self.keyring = keyring
        self.name = name
        self.label = keyring.settings.issuer_label

    def current(self) -> Pkcs11Signer:
        """The current key (`SignerUnavailable` when the token has none)."""
        return self.keyring.signer(self.label)

    def ensure_key(self) -> IssuerKey:
        """The current key, generated in the token when there is none yet."""
        if not self.keyring.has(self.label):
            self.keyring.create(self.label)
        return self.public_keys()[0]

    def sign(self, message: bytes) -> IssuerSignature:
        """Sign with the current key, in the token."""
        signer = self.current()
        public = signer.public_key()
        return IssuerSignature(kid=signer.key_id, public_key=public, signature=signer.sign(message))

    def public_keys(self) -> list[IssuerKey]:
        """The current key, then retired ones (their label says so)."""
        keys = [_issuer_key(self.current(), retired=False)]
        for label in self.keyring.labels(self.label + RETIRED):
            keys.append(_issuer_key(Pkcs11Signer(self.keyring, label), retired=True))
        return keys

    def rotate(self) -> IssuerKey:
        """Retire the current key (relabelled; it stays in the token but never signs again
        as the issuer) and generate a new one. Pin the new key (`identity trust-export`)."""
        old = self.current()
        self.keyring.relabel(self.label, f"{self.label}{RETIRED}{old.key_id}")
        self.keyring.create(self.label)
        return self.public_keys()[0]

    def note_signer(self, message: bytes) -> tuple[bytes, bytes]:
        """`sign` in the shape the audit log's checkpoints want: (public key, signature)."""
        signed = self.sign(message)
        return signed.public_key, signed.signature

    def raw_public_keys(self) -> list[bytes]:
        """Raw public keys that may have signed checkpoints, current first."""
        return [key.public_key for key in self.public_keys()]


class TokenAgentKeys:
    """Agents' keys in a PKCS#11 token (the `AgentKeys` port)."""

    def __init__(self, keyring: Pkcs11Keyring) -> None:
        self.keyring = keyring

    def label(self, agent_id: str) -> str:
        """The token label of the agent's key."""
        return self.keyring.settings.agent_label_prefix + check_agent_id(agent_id)

    def agent_ids(self) -> list[str]:
        """Agents the token holds a key for."""
        prefix = self.keyring.settings.agent_label_prefix
        return [label.removeprefix(prefix) for label in self.keyring.labels(prefix)]

    def create(self, agent_id: str, comment: str) -> AgentKey:
        """Generate the agent's key in the token, or keep the one there."""
        if not self.keyring.has(self.label(agent_id)):
            self.keyring.create(self.label(agent_id))
        return self.public(agent_id, comment=comment)

    def public(self, agent_id: str, *, comment: str | None = None) -> AgentKey:
        """The agent's public key, read from the token."""
        raw = self.signer(agent_id).public_key()
        return AgentKey(public_key=raw, openssh=openssh_public_key(raw, comment or agent_id))

    def signer(self, agent_id: str) -> Pkcs11Signer:
        """The agent's key (`SignerUnavailable` when the token has none)."""
        return self.keyring.signer(self.label(agent_id))

    def sign(self, agent_id: str, message: bytes) -> tuple[AgentKey, bytes]:
        """Sign `message` with the agent's key, in the token."""
        return self.public(agent_id), self.signer(agent_id).sign(message)


def _issuer_key(signer: Pkcs11Signer, *, retired: bool) -> IssuerKey:
    return IssuerKey(
        kid=signer.key_id,
        public_key=signer.public_key(),
        created_at="",
        retired_at="" if retired else None,
    )
