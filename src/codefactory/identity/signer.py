"""The `Signer` port: one Ed25519 signing key that never leaves where it lives.

Every signature the factory makes goes through a signer: the issuer's delegation tokens and
audit checkpoints, each agent's commits (SSHSIG) and provenance (DSSE). Adapters:
`pkcs11.Pkcs11Signer` (a key made non-extractable in an HSM token) and `FileSigner` (a key
file in the data folder: the named development mode, which protects nothing against whoever
can write that folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from codefactory.identity.errors import SignerUnavailable
from codefactory.identity.jwk import thumbprint

DEVELOPMENT_MODE = "development-key-files"
PKCS11_MODE = "pkcs11"


class Signer(Protocol):
    """An Ed25519 key that signs where it lives (RFC 8032 pure Ed25519)."""

    name: str
    """Where the key is found: its token label or file path."""

    @property
    def key_id(self) -> str:
        """RFC 7638 thumbprint of the public key (the JWK `kid`)."""
        ...

    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key; `SignerUnavailable` if it cannot be read."""
        ...

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `message`; `SignerUnavailable` if it cannot sign."""
        ...


class FileSigner:
    """Development mode: an Ed25519 private key file (PKCS #8 PEM or OpenSSH), read per use."""

    def __init__(self, path: Path, *, setting: str = "identity.keys_dir") -> None:
        self.name = str(path)
        self._path = path
        self._setting = setting

    @property
    def key_id(self) -> str:
        """RFC 7638 thumbprint of the public key."""
        return thumbprint(self.public_key())

    def public_key(self) -> bytes:
        """The raw public key of the file's private key."""
        return self._key().public_key().public_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        """Sign with the file's key."""
        return self._key().sign(message)

    def _key(self) -> Ed25519PrivateKey:
        try:
            data = self._path.read_bytes()
            openssh = b"OPENSSH PRIVATE KEY" in data
            key = (
                serialization.load_ssh_private_key(data, password=None)
                if openssh
                else serialization.load_pem_private_key(data, password=None)
            )
        except (OSError, ValueError) as error:
            raise SignerUnavailable(self._setting, f"key {self._path}: {error}") from error
        if not isinstance(key, Ed25519PrivateKey):
            kind = "an ssh-ed25519 key" if openssh else "an Ed25519 private key"
            raise SignerUnavailable(self._setting, f"key {self._path}: not {kind}")
        return key
