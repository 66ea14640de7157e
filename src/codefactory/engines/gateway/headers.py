"""Which headers cross the gateway, which credential a caller sent, and how long the
upstream asks to wait (RFC 9110 §7.6.1 hop-by-hop fields, §10.2.3 `Retry-After`)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable, Mapping

from codefactory.engines.gateway.cassette import CREDENTIAL_HEADERS

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED = HOP_BY_HOP | CREDENTIAL_HEADERS | {"host", "content-length", "accept-encoding"}
# The gateway decodes what it reads (to count usage), so length and encoding are its own.
_NOT_RETURNED = HOP_BY_HOP | {"content-length", "content-encoding", "set-cookie"}
ANTHROPIC_VERSION = "2023-06-01"


def _connection_tokens(items: Iterable[tuple[str, str]]) -> set[str]:
    return {
        token.strip().lower()
        for name, value in items
        if name.lower() == "connection"
        for token in value.split(",")
    }


def caller_credentials(headers: Mapping[str, str]) -> list[str]:
    """The credentials a caller offered, in order: `Authorization: Bearer`, `x-api-key`,
    Azure's `api-key`."""
    offered = []
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        offered.append(token.strip())
    offered += [headers.get(name, "").strip() for name in ("x-api-key", "api-key")]
    return [c for c in offered if c]


def outbound(
    items: Iterable[tuple[str, str]], key_headers: Mapping[str, str], *, anthropic: bool
) -> dict[str, str]:
    """The headers sent upstream: the caller's, without hop-by-hop fields, `host`, length,
    encoding and any credential, plus the upstream's key; `anthropic-version` defaults to
    `ANTHROPIC_VERSION` for Messages calls that name none."""
    items = list(items)
    dropped = _NOT_FORWARDED | _connection_tokens(items)
    headers = {name.lower(): value for name, value in items if name.lower() not in dropped}
    headers["accept-encoding"] = "identity"
    if anthropic:
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    headers.update(key_headers)
    return headers


def returned(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's response headers the caller gets."""
    items = list(items)
    dropped = _NOT_RETURNED | _connection_tokens(items)
    return [(name, value) for name, value in items if name.lower() not in dropped]


def _seconds(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def retry_delay(headers: Mapping[str, str], attempt: int, cap_s: float) -> float | None:
    """Seconds to wait before retry number `attempt` (1 for the first): the upstream's
    `retry-after-ms` or `retry-after` (seconds or an HTTP date), else 0.5 s doubling per
    attempt; None when the upstream asks for longer than `cap_s`."""
    asked = _seconds(headers)
    if asked is None:
        return min(0.5 * 2.0 ** (attempt - 1), cap_s)
    return None if asked > cap_s else max(0.0, asked)
