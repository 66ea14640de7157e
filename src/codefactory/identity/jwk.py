"""Ed25519 public keys as JWKs (RFC 8037 `OKP`), their RFC 7638 thumbprints, JWK sets."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(public_key: bytes) -> str:
    """RFC 7638 thumbprint of an Ed25519 key: SHA-256 of its required members, sorted."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": b64url(public_key)}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return b64url(hashlib.sha256(canonical).digest())


def okp_jwk(public_key: bytes, **extra: Any) -> dict[str, Any]:
    """RFC 8037 §2 public JWK of an Ed25519 key; `kid` is its thumbprint."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(public_key),
        "kid": thumbprint(public_key),
        "use": "sig",
        "alg": "Ed25519",  # RFC 9864 §2
        **extra,
    }
