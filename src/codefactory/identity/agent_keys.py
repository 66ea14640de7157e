"""Each agent's own Ed25519 key, as OpenSSH key files: it signs the agent's commits (git's
`gpg.format=ssh`) and its provenance (DSSE). The factory holds the files and signs outside
the sandbox; the engine never sees them.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from codefactory.identity.agents import check_agent_id
from codefactory.identity.errors import KeyUnavailable
from codefactory.identity.jwk import thumbprint
from codefactory.identity.keyfiles import private_folder, write_secret
from codefactory.identity.signer import FileSigner, Signer


@dataclass(frozen=True, kw_only=True)
class AgentKey:
    """An agent's public key in the forms its verifiers want."""

    public_key: bytes
    openssh: str
    """`ssh-ed25519 AAAA… <comment>`, the allowed_signers and `.pub` form."""

    @property
    def fingerprint(self) -> str:
        """`SHA256:…` as `ssh-keygen -l` and `git log --format=%GF` print it."""
        blob = base64.b64decode(self.openssh.split()[1])
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"

    @property
    def kid(self) -> str:
        """RFC 7638 thumbprint: the DSSE key id and its `kid` in the JWKS."""
        return thumbprint(self.public_key)


class AgentKeys(Protocol):
    """Where agents' keys live (key files in development mode, an HSM token otherwise)."""

    def create(self, agent_id: str, comment: str) -> AgentKey:
        """Make the agent's key, or keep the one that exists."""
        ...

    def public(self, agent_id: str) -> AgentKey:
        """The agent's public key; `KeyUnavailable` when it has none."""
        ...

    def signer(self, agent_id: str) -> Signer:
        """The agent's key as a `Signer` (commits, provenance)."""
        ...

    def sign(self, agent_id: str, message: bytes) -> tuple[AgentKey, bytes]:
        """Sign `message` with the agent's key; returns the key and signature."""
        ...


class AgentKeyFiles:
    """Development mode: `<folder>/<agent>/id_ed25519` (OpenSSH private key, 0600) and
    `id_ed25519.pub`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def private_key_path(self, agent_id: str) -> Path:
        """Where the agent's private key lives (git's `user.signingkey`)."""
        return self.folder / check_agent_id(agent_id).replace(":", "_") / "id_ed25519"

    def create(self, agent_id: str, comment: str) -> AgentKey:
        """Make the agent's key, or keep the one a crashed earlier attempt left."""
        path = self.private_key_path(agent_id)
        if path.exists():
            return self.public(agent_id)
        private_folder(path.parent)
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        path.with_suffix(".pub").write_bytes(public + f" {comment}\n".encode())
        write_secret(
            path,
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ),
        )
        return self.public(agent_id)

    def public(self, agent_id: str) -> AgentKey:
        """The agent's public key, read from its `.pub` file."""
        path = self.private_key_path(agent_id).with_suffix(".pub")
        try:
            line = path.read_text().strip()
            key = serialization.load_ssh_public_key(line.encode())
        except (OSError, ValueError) as error:
            raise KeyUnavailable(str(path), str(error)) from error
        if not isinstance(key, Ed25519PublicKey):
            raise KeyUnavailable(str(path), "not an ssh-ed25519 key")
        return AgentKey(public_key=key.public_bytes_raw(), openssh=line)

    def signer(self, agent_id: str) -> Signer:
        """The agent's key file as a `Signer`."""
        return FileSigner(self.private_key_path(agent_id))

    def sign(self, agent_id: str, message: bytes) -> tuple[AgentKey, bytes]:
        """Sign `message` with the agent's key (for DSSE); returns the key and signature."""
        signature = self.signer(agent_id).sign(message)
        return self.public(agent_id), signature
