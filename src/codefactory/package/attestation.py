"""`attestation.dsse.json`: the factory's signed word on what a change package held when built.

A DSSE v1 envelope (payload type `application/vnd.codefactory.package.v1+json`) whose payload
is the RFC 8785 canonical JSON

    {"_type": "codefactory.package.v1", "commit": "<sha1>", "package_digest": "sha256:<hex>",
     "run_id": "r-…"}

signed over its PAE by the issuer (the `Issuer` port: an HSM key through PKCS#11, pinned in
`identity.trust_file`). `package_digest` is the digest of `manifest.json`, which lists every
file's SHA-256; the envelope is written after the manifest and not listed in it. Whoever can
write the data folder can rewrite the package and its manifest, but not re-sign this: at
review the manifest must hash to the attested digest (`verify_attestation`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from codefactory.audit.canonical import canonical_json
from codefactory.identity.port import IssuerKey, IssuerSignature
from codefactory.package.dsse import pae, seal
from codefactory.package.errors import PackageError

FILE_NAME = "attestation.dsse.json"
PAYLOAD_TYPE = "application/vnd.codefactory.package.v1+json"
STATEMENT_TYPE = "codefactory.package.v1"


class Attestor(Protocol):
    """What signs an attestation: the issuer (`identity.port.Issuer` has this method)."""

    def sign(self, message: bytes) -> IssuerSignature:
        """Sign with the current (pinned) key; `SignerUnavailable` when it cannot."""
        ...


class AttestationInvalid(PackageError):
    """The package's attestation is missing, unreadable, signed by a key that is not the
    issuer's (pinned) key, or over another run, commit or package."""

    def __init__(self, folder: Path, problem: str) -> None:
        super().__init__(f"the package attestation in {folder} does not hold: {problem}")
        self.folder = folder
        self.problem = problem


@dataclass(frozen=True, kw_only=True)
class Attested:
    """What a verified attestation says, and which issuer key signed it."""

    run_id: str
    commit: str
    package_digest: str
    kid: str
    digest: str
    """`sha256:<hex>` of the attestation file as written (logged in `package-built`)."""


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def attest(folder: Path, *, run_id: str, commit: str, package_digest: str, issuer: Attestor) -> str:
    """Sign and write the attestation; returns the file's `sha256:<hex>` digest.
    `SignerUnavailable` (the HSM down, a key not pinned) propagates: no package is unsigned."""
    payload = canonical_json(
        {
            "_type": STATEMENT_TYPE,
            "run_id": run_id,
            "commit": commit,
            "package_digest": package_digest,
        }
    )

    def sign(message: bytes) -> tuple[str, bytes]:
        signed = issuer.sign(message)
        return signed.kid, signed.signature

    envelope = seal(PAYLOAD_TYPE, payload, sign)
    text = (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode()
    (folder / FILE_NAME).write_bytes(text)
    return _sha256(text)


def verify_attestation(folder: Path, keys: Sequence[IssuerKey]) -> Attested:
    """The attestation in `folder`, verified with `keys` (the issuer's pinned keys);
    `AttestationInvalid` says why not."""
    path = folder / FILE_NAME
    try:
        raw = path.read_bytes()
        envelope = json.loads(raw)
        payload = base64.b64decode(envelope["payload"], validate=True)
        (entry,) = envelope["signatures"]
        kid, signature = entry["keyid"], base64.b64decode(entry["sig"], validate=True)
        payload_type = envelope["payloadType"]
    except FileNotFoundError:
        raise AttestationInvalid(folder, f"there is no {FILE_NAME}") from None
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as err:
        raise AttestationInvalid(folder, f"{FILE_NAME} is unreadable: {err}") from None
    if payload_type != PAYLOAD_TYPE:
        raise AttestationInvalid(folder, f"payload type {payload_type!r} is not {PAYLOAD_TYPE}")
    key = next((k for k in keys if k.kid == kid), None)
    if key is None:
        raise AttestationInvalid(folder, f"signed by {kid!r}, not a pinned issuer key")
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(
            signature, pae(PAYLOAD_TYPE, payload)
        )
    except (InvalidSignature, ValueError):
        problem = "its signature does not verify: forged or altered"
        raise AttestationInvalid(folder, problem) from None
    fields = _fields(folder, payload)
    return Attested(
        run_id=fields["run_id"],
        commit=fields["commit"],
        package_digest=fields["package_digest"],
        kid=kid,
        digest=_sha256(raw),
    )


def _fields(folder: Path, payload: bytes) -> dict[str, str]:
    try:
        fields: Any = json.loads(payload)
    except ValueError as err:
        raise AttestationInvalid(folder, f"its payload is not JSON: {err}") from None
    if not isinstance(fields, dict) or fields.get("_type") != STATEMENT_TYPE:
        raise AttestationInvalid(folder, f"its payload is not a {STATEMENT_TYPE} statement")
    wanted = ("run_id", "commit", "package_digest")
    if not all(isinstance(fields.get(name), str) and fields[name] for name in wanted):
        raise AttestationInvalid(folder, f"its payload lacks one of {', '.join(wanted)}")
    return {name: fields[name] for name in wanted}
