"""The witness's own Ed25519 key: a PKCS#8 PEM file in the witness's folder, mode 0600.

The folder also names the key (`name`), since the key ID depends on it. Nothing of the
factory's is read: a witness's key must never be reachable from the factory's data folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from codefactory.audit.cosignature import CosignerKey

KEY_FILE = "witness-key.pem"
NAME_FILE = "name"


class WitnessSetupError(Exception):
    """The witness's folder, key or configuration cannot be used; the message says why."""


@dataclass(frozen=True)
class WitnessKey:
    """The witness's name and private key (development-grade: a key file, not an HSM)."""

    name: str
    private_key: Ed25519PrivateKey

    @property
    def public(self) -> CosignerKey:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return CosignerKey(name=self.name, public_key=raw)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


def prepare_folder(folder: Path) -> Path:
    """The witness's folder, created 0700; refused if it is a factory's data folder."""
    folder = folder.expanduser().resolve()
    if (folder / "factory.db").exists():
        raise WitnessSetupError(
            f"{folder} is a factory's data folder: a witness keeps its own folder, apart"
        )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def load_key(folder: Path, name: str | None = None) -> WitnessKey:
    """The witness key in `folder`, created on first use with `name`.

    A given `name` must match the stored one: renaming changes the key ID every verifier
    pinned. Raises WitnessSetupError.
    """
    folder = prepare_folder(folder)
    key_path, name_path = folder / KEY_FILE, folder / NAME_FILE
    if not key_path.exists():
        if not name:
            raise WitnessSetupError(f"no witness key in {folder}: give --name to create one")
        _check_name(name)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(name_path, (name + "\n").encode())
        _write_private(key_path, pem)
        return WitnessKey(name, key)
    stored = name_path.read_text(encoding="utf-8").strip()
    if name and name != stored:
        raise WitnessSetupError(
            f"the witness in {folder} is named {stored!r}, not {name!r} (a new name would "
            "change its key ID)"
        )
    if key_path.stat().st_mode & 0o077:
        raise WitnessSetupError(f"{key_path} is readable by others: chmod 600 it")
    loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise WitnessSetupError(f"{key_path} does not hold an Ed25519 key")
    return WitnessKey(stored, loaded)


def _check_name(name: str) -> None:
    if any(c.isspace() or not c.isprintable() for c in name) or "+" in name:
        raise WitnessSetupError(f"a witness name has no spaces, controls or '+': {name!r}")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
