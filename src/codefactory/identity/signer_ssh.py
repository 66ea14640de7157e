"""OpenSSH signatures (`SSHSIG`, OpenSSH PROTOCOL.sshsig) made through a `Signer`, so a key
kept in an HSM signs git commits that plain `ssh-keygen -Y verify` and `git verify-commit`
accept, without a private key file.
"""

from __future__ import annotations

import base64
import hashlib
import struct

from codefactory.identity.signer import Signer

MAGIC = b"SSHSIG"
VERSION = 1
HASH_ALGORITHM = "sha512"
KEY_TYPE = b"ssh-ed25519"
GIT_NAMESPACE = "git"
_ARMOR_WIDTH = 70  # as ssh-keygen wraps it


def _string(data: bytes) -> bytes:
    """RFC 4251 §5 `string`: a uint32 length and the bytes."""
    return struct.pack(">I", len(data)) + data


def public_key_blob(public_key: bytes) -> bytes:
    """RFC 8709 §4 `ssh-ed25519` public key blob."""
    return _string(KEY_TYPE) + _string(public_key)


def openssh_public_key(public_key: bytes, comment: str = "") -> str:
    """`ssh-ed25519 AAAA… comment`, the allowed_signers and `.pub` form."""
    line = f"ssh-ed25519 {base64.b64encode(public_key_blob(public_key)).decode()}"
    return f"{line} {comment}".rstrip()


def signed_data(message: bytes, namespace: str) -> bytes:
    """What the key signs (PROTOCOL.sshsig §"Signed Data"): magic, namespace, reserved,
    hash algorithm and the SHA-512 of the message."""
    return (
        MAGIC
        + _string(namespace.encode())
        + _string(b"")
        + _string(HASH_ALGORITHM.encode())
        + _string(hashlib.sha512(message).digest())
    )


def sshsig(signer: Signer, message: bytes, namespace: str = GIT_NAMESPACE) -> str:
    """The armored `-----BEGIN SSH SIGNATURE-----` block of `message` in `namespace`, signed
    by `signer` (`SignerUnavailable` when it cannot sign)."""
    signature = signer.sign(signed_data(message, namespace))
    blob = (
        MAGIC
        + struct.pack(">I", VERSION)
        + _string(public_key_blob(signer.public_key()))
        + _string(namespace.encode())
        + _string(b"")
        + _string(HASH_ALGORITHM.encode())
        + _string(_string(KEY_TYPE) + _string(signature))  # RFC 8709 §6 signature blob
    )
    text = base64.b64encode(blob).decode()
    lines = [text[i : i + _ARMOR_WIDTH] for i in range(0, len(text), _ARMOR_WIDTH)]
    return (
        "\n".join(["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----"]) + "\n"
    )
