"""Signature schemes shared by several senders: HMAC-SHA256 over bytes, shared tokens.

Every comparison is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from codefactory.triggers.errors import SignatureInvalid
from codefactory.triggers.port import Delivery


def hmac_sha256(secret: bytes | str, message: bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).digest()


def same(given: str, expected: str) -> bool:
    """Constant-time equality of two ASCII strings (False for anything else)."""
    try:
        return hmac.compare_digest(given.encode("ascii"), expected.encode("ascii"))
    except UnicodeEncodeError:
        return False


def require_hex_hmac(
    delivery: Delivery,
    *,
    header: str,
    secret: str,
    message: bytes,
    prefix: str = "",
    delivery_id: str = "",
) -> None:
    """`header` must be `prefix` + hex HMAC-SHA256(secret, message) (GitHub, Jira, Slack…)."""
    given = delivery.header(header).strip()
    if not given:
        raise SignatureInvalid(delivery.source, delivery_id, f"the `{header}` header is missing")
    expected = prefix + hmac_sha256(secret, message).hex()
    if not same(given.lower(), expected):
        raise SignatureInvalid(delivery.source, delivery_id, f"`{header}` does not match")


def require_token(delivery: Delivery, *, header: str, secret: str, delivery_id: str = "") -> None:
    """`header` must carry the shared secret itself (GitLab, Datadog, ServiceNow)."""
    given = delivery.header(header)
    if not given:
        raise SignatureInvalid(delivery.source, delivery_id, f"the `{header}` header is missing")
    if not hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8")):
        raise SignatureInvalid(delivery.source, delivery_id, f"`{header}` does not match")


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after `whsec_`, else the bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode("utf-8")
