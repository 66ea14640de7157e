"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
`— <key name> base64(key ID[4] || signature)`. An Ed25519 key ID is
`SHA-256(name || 0x0A || 0x01 || public key)[:4]`; a verifier key is written
`<name>+<hex key ID>+base64(0x01 || public key)`, the form Go's `golang.org/x/mod/sumdb/note`
and every transparency-log witness read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from codefactory.audit.errors import CheckpointInvalid

ED25519 = b"\x01"  # the signature-type byte of Ed25519 note keys
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space open each signature line

NoteSigner = Callable[[bytes], tuple[bytes, bytes]]
"""Signs note text; returns the raw 32-byte Ed25519 public key used and the signature."""


def key_id(name: str, public_key: bytes, key_type: bytes = ED25519) -> bytes:
    """The 4-byte key ID `SHA-256(name || 0x0A || key_type || public key)[:4]` of a named
    key; `key_type` is the signature-type byte (0x01 note keys, 0x04 cosignature/v1 keys)."""
    return hashlib.sha256(name.encode() + b"\n" + key_type + public_key).digest()[:4]


def encode_key(name: str, public_key: bytes, key_type: bytes = ED25519) -> str:
    """The verifier key string `<name>+<hex key ID>+base64(key_type || public key)`."""
    blob = base64.b64encode(key_type + public_key).decode()
    return f"{name}+{key_id(name, public_key, key_type).hex()}+{blob}"


def decode_key(text: str, key_type: bytes, *, what: str) -> tuple[str, bytes]:
    """The name and raw 32-byte Ed25519 public key of a verifier key string
    `<name>+<hex key ID>+base64(key_type || key)`. Raises ValueError naming `what` (e.g.
    "note verifier key") when it is malformed, not base64, of another type or length, or its
    key ID does not match its name and key."""
    name, _, rest = text.strip().partition("+")
    hex_id, _, blob = rest.partition("+")
    _check_name(name)
    if not hex_id or not blob:
        raise ValueError(f"a {what} is <name>+<hex key ID>+<base64 key>")
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error:
        raise ValueError(f"the {what} is not base64") from None
    if len(raw) != 33 or raw[:1] != key_type:
        raise ValueError(
            f"not an Ed25519 {what} (type byte 0x{key_type.hex()} and 32 key bytes expected)"
        )
    want = key_id(name, raw[1:], key_type).hex()
    if want != hex_id.lower():
        raise ValueError(f"the key ID {hex_id!r} does not match the key of {name!r} (want {want})")
    return name, raw[1:]


@dataclass(frozen=True, kw_only=True)
class NoteVerifier:
    """A named Ed25519 public key that may sign notes."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def encoded(self) -> str:
        """The verifier key string: `<name>+<hex key ID>+<base64(0x01 || key)>`."""
        return encode_key(self.name, self.public_key)


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise ValueError(f"a note key name has no spaces and no '+': {name!r}")


def sign_note(text: str, name: str, sign: NoteSigner) -> str:
    """`text` (ending in a newline) followed by its signature line for key `name`."""
    _check_name(name)
    if not text.endswith("\n") or "\n\n" in text:
        raise ValueError("note text ends with one newline and has no blank lines")
    public_key, signature = sign(text.encode("utf-8"))
    blob = base64.b64encode(key_id(name, public_key) + signature).decode()
    return f"{text}\n{SIGNATURE_PREFIX}{name} {blob}\n"


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """The note's text and its signatures `(key name, key ID, signature)`, unverified."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise CheckpointInvalid("malformed", "not a signed note: no signature block")
    text, block = note[: split + 1], note[split + 2 :]
    return text, [_signature_line(line) for line in block[:-1].split("\n")]


def open_note(note: str, verifiers: Sequence[NoteVerifier]) -> tuple[str, NoteVerifier]:
    """The note's text and the verifier whose signature on it holds.

    Signatures by keys not in `verifiers` are ignored, as the spec says; at least one must be
    by a known key and valid. Raises CheckpointInvalid naming what is wrong.
    """
    text, signatures = split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    for name, kid, signature in signatures:
        verifier = known.get((name, kid))
        if verifier is None:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(verifier.public_key).verify(
                signature, text.encode("utf-8")
            )
        except InvalidSignature:
            raise CheckpointInvalid(
                "bad-signature",
                f"the signature by {name}+{kid.hex()} does not verify: the note was altered "
                "or forged",
            ) from None
        return text, verifier
    seen = ", ".join(f"{name}+{kid.hex()}" for name, kid, _ in signatures)
    raise CheckpointInvalid("unknown-key", f"signed by no key of this log (signers: {seen})")


def signature_line(line: str) -> tuple[str, bytes]:
    """The key name and the decoded bytes of a signature line `— <name> <base64>` (no
    newline); CheckpointInvalid `malformed` when it is not one or its blob is not base64."""
    if not line.startswith(SIGNATURE_PREFIX):
        raise CheckpointInvalid("malformed", f"not a note signature line: {line[:60]!r}")
    name, _, blob = line[len(SIGNATURE_PREFIX) :].partition(" ")
    try:
        return name, base64.b64decode(blob, validate=True)
    except binascii.Error:
        raise CheckpointInvalid("malformed", f"signature of {name} is not base64") from None


def _signature_line(line: str) -> tuple[str, bytes, bytes]:
    name, raw = signature_line(line)
    if len(raw) < 5:
        raise CheckpointInvalid("malformed", f"signature of {name} is too short")
    return name, raw[:4], raw[4:]


def parse_verifier(text: str) -> NoteVerifier:
    """A verifier key string `<name>+<hex key ID>+base64(0x01 || key)`; ValueError if it is
    malformed, not Ed25519, or its key ID does not match its name and key."""
    name, public_key = decode_key(text, ED25519, what="note verifier key")
    return NoteVerifier(name=name, public_key=public_key)
