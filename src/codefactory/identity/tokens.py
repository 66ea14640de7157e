"""Compact JWS (RFC 7515) for delegation tokens: signed through the `Issuer` port, checked
with PyJWT.

Signing goes through the port, so a KMS or HSM key works without exporting it. Verification
is PyJWT's, with the RFC 9864 algorithm name `Ed25519` registered beside the deprecated
`EdDSA` (accepted, never issued) and nothing else: RFC 8725 §3.1's algorithm allow-list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt import PyJWS
from jwt.algorithms import OKPAlgorithm
from jwt.exceptions import InvalidSignatureError, PyJWTError

from codefactory.identity.jwk import b64url
from codefactory.identity.port import Issuer, IssuerKey

ISSUED_ALGORITHM = "Ed25519"  # RFC 9864 §2
ACCEPTED_ALGORITHMS = ("Ed25519", "EdDSA")
TOKEN_TYPE = "delegation+jwt"  # RFC 8725 §3.11 explicit typing


class TokenInvalid(Exception):
    """The compact JWS is malformed, signed by an unknown key, or its signature fails."""


def _verifier() -> PyJWS:
    jws = PyJWS(algorithms=["EdDSA"])
    jws.register_algorithm(ISSUED_ALGORITHM, OKPAlgorithm())
    return jws


_JWS = _verifier()


def sign_token(claims: dict[str, Any], issuer: Issuer) -> tuple[str, str]:
    """The compact JWS of `claims` and the kid that signed it."""
    for _ in range(3):  # the key may rotate between reading its id and signing
        kid = issuer.public_keys()[0].kid
        header = {"alg": ISSUED_ALGORITHM, "kid": kid, "typ": TOKEN_TYPE}
        signing_input = f"{_segment(header)}.{_segment(claims)}"
        signed = issuer.sign(signing_input.encode())
        if signed.kid == kid:
            return f"{signing_input}.{b64url(signed.signature)}", kid
    raise TokenInvalid("the issuer key kept rotating while signing")  # pragma: no cover


def open_token(token: str, keys: Sequence[IssuerKey]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The verified header and claims of `token`; TokenInvalid says why not."""
    try:
        header = _JWS.get_unverified_header(token)
    except PyJWTError as error:
        raise TokenInvalid(f"not a compact JWS: {error}") from error
    if header.get("typ") != TOKEN_TYPE:
        raise TokenInvalid(f"token type {header.get('typ')!r} is not {TOKEN_TYPE!r}")
    key = next((k for k in keys if k.kid == header.get("kid")), None)
    if key is None:
        raise TokenInvalid(f"signed by an unknown key (kid {header.get('kid')!r})")
    try:
        verified = _JWS.decode_complete(
            token,
            key=Ed25519PublicKey.from_public_bytes(key.public_key),
            algorithms=list(ACCEPTED_ALGORITHMS),
        )
        claims = json.loads(verified["payload"])
    except InvalidSignatureError as error:
        raise TokenInvalid("its signature does not verify: forged or altered") from error
    except (PyJWTError, ValueError) as error:
        raise TokenInvalid(str(error)) from error
    if not isinstance(claims, dict):
        raise TokenInvalid("its payload is not a JSON object")
    return header, claims


def _segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())
