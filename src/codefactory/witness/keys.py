"""The witness's own Ed25519 key, behind the `Signer` port (`identity/signer.py`).

Two places for it: a key in a PKCS#11 token (an HSM; generated there non-extractable), or,
in development, a PKCS#8 PEM file `witness-key.pem` in the witness's folder (mode 0600). The
folder also names the key (`name`), since the key ID depends on it. Nothing of the factory's
is read: a witness's key must never be reachable from the factory's data folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from codefactory.audit.cosignature import CosignerKey
from codefactory.identity.errors import SignerUnavailable
from codefactory.identity.settings import Pkcs11Settings
from codefactory.identity.signer import FileSigner, Signer

KEY_FILE = "witness-key.pem"
NAME_FILE = "name"
TOKEN_FILE = "pkcs11-key"  # the key's label, when the key lives in a token


class WitnessSetupError(Exception):
    """The witness's folder, key or configuration cannot be used; the message says why."""


KEY_FILE_MODE = "development-key-file"
PKCS11_MODE = "pkcs11"


@dataclass(frozen=True)
class WitnessKey:
    """The witness's key name and its signer; `mode` says where the private key lives."""

    name: str
    signer: Signer
    mode: str = KEY_FILE_MODE

    @property
    def public(self) -> CosignerKey:
        """`SignerUnavailable` when the token cannot be read."""
        return CosignerKey(name=self.name, public_key=self.signer.public_key())

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature; `SignerUnavailable` when the token cannot sign."""
        return self.signer.sign(message)


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
    """Development mode: the witness key file in `folder`, created on first use with `name`.

    A given `name` must match the stored one: renaming changes the key ID every verifier
    pinned. Raises WitnessSetupError.
    """
    folder = prepare_folder(folder)
    key_path = folder / KEY_FILE
    if (folder / TOKEN_FILE).exists():
        raise WitnessSetupError(
            f"the witness key of {folder} is in a PKCS#11 token: give --pkcs11-token"
        )
    if not key_path.exists():
        stored = _key_name(folder, name)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(key_path, pem)
    else:
        stored = _key_name(folder, name)
        if key_path.stat().st_mode & 0o077:
            raise WitnessSetupError(f"{key_path} is readable by others: chmod 600 it")
    key = WitnessKey(stored, FileSigner(key_path, setting="witness key file"))
    return _checked(key)


def token_key(folder: Path, name: str | None, settings: Pkcs11Settings, label: str) -> WitnessKey:
    """The witness key labelled `label` in a PKCS#11 token, generated there (non-extractable)
    on first use; its name is kept in `folder`. Raises WitnessSetupError."""
    from codefactory.identity.pkcs11 import Pkcs11Keyring

    folder = prepare_folder(folder)
    if (folder / KEY_FILE).exists():
        raise WitnessSetupError(f"{folder} has a key file: a witness keeps one key")
    marker = folder / TOKEN_FILE
    if marker.exists() and marker.read_text(encoding="utf-8").strip() != label:
        raise WitnessSetupError(f"the witness key of {folder} has another label")
    stored = _key_name(folder, name)
    keyring = Pkcs11Keyring(settings)
    try:
        signer = keyring.signer(label) if keyring.has(label) else keyring.create(label)
    except SignerUnavailable as error:
        raise WitnessSetupError(str(error)) from error
    if not marker.exists():
        _write_private(marker, (label + "\n").encode())
    return _checked(WitnessKey(stored, signer, PKCS11_MODE))


def _checked(key: WitnessKey) -> WitnessKey:
    try:
        key.public  # noqa: B018 - reads the key now: a broken key fails at start, not mid-request
    except SignerUnavailable as error:
        raise WitnessSetupError(str(error)) from error
    return key


def _key_name(folder: Path, name: str | None) -> str:
    """The key name stored in `folder` (written from `name` on first use)."""
    name_path = folder / NAME_FILE
    if not name_path.exists():
        if not name:
            raise WitnessSetupError(f"no witness key in {folder}: give --name to create one")
        _check_name(name)
        _write_private(name_path, (name + "\n").encode())
        return name
    stored = name_path.read_text(encoding="utf-8").strip()
    if name and name != stored:
        raise WitnessSetupError(
            f"the witness in {folder} is named {stored!r}, not {name!r} (a new name would "
            "change its key ID)"
        )
    return stored


def _check_name(name: str) -> None:
    if any(c.isspace() or not c.isprintable() for c in name) or "+" in name:
        raise WitnessSetupError(f"a witness name has no spaces, controls or '+': {name!r}")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
