"""The issuer's Ed25519 keys as files under the data folder: the development-mode `Issuer`.

Development mode only (`identity.signer = "development-key-files"`): whoever can write the
data folder can sign as the issuer. `pkcs11_keys.TokenIssuer` keeps the keys in an HSM.

`<folder>/<kid>.pem` holds the current private key (PKCS #8, mode 0600), `<kid>.pub` every
public key, `keys.json` their order and times. Rotation makes a new current key, deletes the
old private key (a retired key can never sign again) and keeps its public key published, so
tokens and checkpoints signed before still verify.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from codefactory.identity.errors import KeyUnavailable
from codefactory.identity.jwk import thumbprint
from codefactory.identity.port import IssuerKey, IssuerSignature
from codefactory.identity.signer import FileSigner


def write_secret(path: Path, data: bytes) -> None:
    """Create `path` readable by its owner only; never overwrite an existing key."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def private_folder(path: Path) -> None:
    """Create `path` and its missing parents, each 0700 (`mkdir`'s mode sets only the last)."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)


def replace_file(path: Path, data: bytes) -> None:
    """Write `path` atomically (a rename), so readers never see half a file."""
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_bytes(data)
    os.replace(scratch, path)


class Ed25519KeyFiles:
    """An `Issuer` whose keys are Ed25519 key files; the first key is made on first use."""

    def __init__(self, folder: Path, *, name: str) -> None:
        self.folder = folder
        self.name = name

    def sign(self, message: bytes) -> IssuerSignature:
        """Sign with the current key."""
        with self._locked():
            index = self._index_or_create()
            kid = str(index[0]["kid"])
            signer = self.signer(kid)
            public = signer.public_key()
        return IssuerSignature(kid=kid, public_key=public, signature=signer.sign(message))

    def signer(self, kid: str) -> FileSigner:
        """The key file of `kid` as a `Signer` (development mode)."""
        return FileSigner(self.folder / f"{kid}.pem")

    def public_keys(self) -> list[IssuerKey]:
        """Every key ever used, the current one first."""
        with self._locked():
            index = self._index_or_create()
        return [self._public(entry) for entry in index]

    def rotate(self) -> IssuerKey:
        """Make a new current key; the old one's private half is deleted, its public kept."""
        with self._locked():
            index = self._index_or_create()
            now = datetime.now(UTC).isoformat()
            retired = index[0]
            retired["retired_at"] = now
            entry = self._new_key(now)
            replace_file(self._index_path, json.dumps([entry, *index], indent=2).encode())
            (self.folder / f"{retired['kid']}.pem").unlink(missing_ok=True)
        return self._public(entry)

    def note_signer(self, message: bytes) -> tuple[bytes, bytes]:
        """`sign` in the shape the audit log's checkpoints want: (public key, signature)."""
        signed = self.sign(message)
        return signed.public_key, signed.signature

    def raw_public_keys(self) -> list[bytes]:
        """Raw public keys that may have signed checkpoints, current first."""
        return [key.public_key for key in self.public_keys()]

    # -- files ------------------------------------------------------------------------------

    @property
    def _index_path(self) -> Path:
        return self.folder / "keys.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time creates or rotates keys."""
        private_folder(self.folder)
        with open(self.folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _index_or_create(self) -> list[dict[str, str | None]]:
        if not self._index_path.exists():
            entry = self._new_key(datetime.now(UTC).isoformat())
            replace_file(self._index_path, json.dumps([entry], indent=2).encode())
        try:
            index: list[dict[str, str | None]] = json.loads(self._index_path.read_text())
        except (OSError, ValueError) as error:
            raise KeyUnavailable(str(self._index_path), str(error)) from error
        return index

    def _new_key(self, created_at: str) -> dict[str, str | None]:
        private = Ed25519PrivateKey.generate()
        public = private.public_key()
        kid = thumbprint(public.public_bytes_raw())
        write_secret(
            self.folder / f"{kid}.pem",
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (self.folder / f"{kid}.pub").write_bytes(pem)
        return {"kid": kid, "created_at": created_at, "retired_at": None}

    def _public(self, entry: dict[str, str | None]) -> IssuerKey:
        path = self.folder / f"{entry['kid']}.pub"
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as error:
            raise KeyUnavailable(str(path), str(error)) from error
        if not isinstance(key, Ed25519PublicKey):
            raise KeyUnavailable(str(path), "not an Ed25519 public key")
        raw = key.public_bytes_raw()
        if thumbprint(raw) != entry["kid"]:
            raise KeyUnavailable(str(path), "its thumbprint does not match its key id")
        return IssuerKey(
            kid=thumbprint(raw),
            public_key=raw,
            created_at=str(entry["created_at"]),
            retired_at=entry.get("retired_at"),
        )
