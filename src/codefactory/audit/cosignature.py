"""Witness cosignatures in the C2SP tlog-cosignature format (c2sp.org/tlog-cosignature).

A cosignature is a signed-note signature line `— <witness name> base64(key ID[4] ||
timestamp[8] || signature[64])`. The Ed25519 signature is over

    cosignature/v1
    time <timestamp, decimal unix seconds>
    <the checkpoint's note text: origin, size, root hash, extension lines>

the timestamp being the same 8-byte big-endian number that precedes it in the line. A
cosigner key's ID is `SHA-256(name || 0x0A || 0x04 || public key)[:4]` and its verifier key is
written `<name>+<hex key ID>+base64(0x04 || public key)`: the signature-type byte 0x04 keeps a
cosignature from ever being read as a log's own (0x01) signature.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from codefactory.audit.errors import CheckpointInvalid
from codefactory.audit.note import (
    SIGNATURE_PREFIX,
    decode_key,
    encode_key,
    key_id,
    signature_line,
)

COSIGNATURE_ED25519 = b"\x04"  # the signature-type byte of Ed25519 cosignature/v1 keys
_LINE_BYTES = 4 + 8 + 64
_MAX_TIME = 2**63 - 1

Sign = Callable[[bytes], bytes]
"""Signs a message with the witness's Ed25519 private key; returns the 64-byte signature."""


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 cosignature/v1 key."""
    return key_id(name, public_key, COSIGNATURE_ED25519)


def signed_message(body: str, timestamp: int) -> bytes:
    """The bytes a cosignature signs: the cosignature/v1 header, the time line, the body."""
    if not 0 <= timestamp <= _MAX_TIME:
        raise ValueError(f"cosignature time {timestamp} is out of range")
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode("utf-8")


@dataclass(frozen=True, kw_only=True)
class CosignerKey:
    """A witness's named Ed25519 public key."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return cosigner_key_id(self.name, self.public_key)

    def encoded(self) -> str:
        """The verifier key string `<name>+<hex key ID>+base64(0x04 || key)`."""
        return encode_key(self.name, self.public_key, COSIGNATURE_ED25519)


def parse_cosigner_key(text: str) -> CosignerKey:
    """A verifier key string of a witness; ValueError naming what is wrong."""
    name, public_key = decode_key(text, COSIGNATURE_ED25519, what="cosignature/v1 key")
    return CosignerKey(name=name, public_key=public_key)


def cosign(body: str, *, name: str, public_key: bytes, sign: Sign, timestamp: int) -> str:
    """The cosignature line (ending in a newline) of witness `name` over checkpoint `body`."""
    signature = sign(signed_message(body, timestamp))
    if len(signature) != 64:
        raise ValueError("an Ed25519 signature is 64 bytes")
    blob = cosigner_key_id(name, public_key) + struct.pack(">Q", timestamp) + signature
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True, kw_only=True)
class Cosignature:
    """A verified cosignature: which witness, when (unix seconds), over which note text."""

    witness: CosignerKey
    timestamp: int
    line: str


def verify_cosignature(body: str, line: str, key: CosignerKey) -> Cosignature:
    """Check one signature line as `key`'s cosignature over the checkpoint text `body`.

    Raises CheckpointInvalid: `unknown-key` when the line is not by this key (name and key
    ID), `malformed`, or `bad-signature`.
    """
    line = line.rstrip("\n")
    name, raw = signature_line(line)
    if name != key.name or raw[:4] != key.key_id:
        raise CheckpointInvalid("unknown-key", f"the line is not signed by {key.encoded()}")
    if len(raw) != _LINE_BYTES:
        raise CheckpointInvalid(
            "malformed", f"a cosignature is {_LINE_BYTES} bytes, this one {len(raw)}"
        )
    (timestamp,) = struct.unpack(">Q", raw[4:12])
    try:
        message = signed_message(body, timestamp)
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(raw[12:], message)
    except (InvalidSignature, ValueError):
        raise CheckpointInvalid(
            "bad-signature",
            f"the cosignature of witness {key.name} does not verify over this checkpoint",
        ) from None
    return Cosignature(witness=key, timestamp=timestamp, line=line + "\n")
