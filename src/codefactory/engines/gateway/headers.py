"""Which headers cross the gateway (allow-lists both ways), which credential a caller sent,
and how long the upstream asks to wait (RFC 9110 §10.2.3 `Retry-After`)."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Mapping

FORWARDED = frozenset({"content-type", "accept", "anthropic-version", "anthropic-beta"})
"""The only caller headers sent upstream (`anthropic-beta` filtered by `betas`). Everything
else stays behind: credentials, `openai-organization`/`openai-project` (which would pick the
bank key's billing), cookies, `x-forwarded-*`, SDK telemetry, hop-by-hop fields."""
RETURNED = frozenset(
    {
        "content-type",
        "x-request-id",
        "request-id",
        "apim-request-id",
        "retry-after",
        "retry-after-ms",
        "x-should-retry",
    }
)
"""The only upstream response headers the caller gets."""
NEVER_BETAS = (
    "mcp-client",
    "mcp-servers",
    "computer-use",
    "code-execution",
    "web-fetch",
    "web-search",
    "files-api",
    "skills",
)
"""`anthropic-beta` families that let the provider act outside the sandbox: never forwarded."""
_BETA = re.compile(r"^(?P<family>[a-z0-9]+(?:-[a-z0-9]+)*?)-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
ANTHROPIC_VERSION = "2023-06-01"


def caller_credentials(headers: Mapping[str, str]) -> list[str]:
    """The credentials a caller offered, in order: `Authorization: Bearer`, `x-api-key`,
    Azure's `api-key`."""
    offered = []
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        offered.append(token.strip())
    offered += [headers.get(name, "").strip() for name in ("x-api-key", "api-key")]
    return [c for c in offered if c]


def betas(value: str, families: Iterable[str]) -> str:
    """The values of an `anthropic-beta` header that may pass: `FAMILY-YYYY-MM-DD` (or
    `FAMILY-YYYYMMDD`) for a vetted family not in `NEVER_BETAS`, comma-joined."""
    vetted = {f.lower() for f in families}
    kept = []
    for item in value.split(","):
        item = item.strip().lower()
        match = _BETA.match(item)
        if match is None or item.startswith(NEVER_BETAS):
            continue
        if match.group("family") in vetted and item not in kept:
            kept.append(item)
    return ",".join(kept)


def outbound(
    items: Iterable[tuple[str, str]],
    key_headers: Mapping[str, str],
    *,
    anthropic: bool,
    beta_families: Iterable[str] = (),
) -> dict[str, str]:
    """The headers sent upstream: the caller's `FORWARDED` ones (vetted betas only), plus the
    upstream's key; `anthropic-version` defaults to `ANTHROPIC_VERSION` for Messages calls
    that name none."""
    headers: dict[str, str] = {}
    for name, value in items:
        name = name.lower()
        if name not in FORWARDED:
            continue
        if name == "anthropic-beta":
            joined = ",".join(filter(None, [headers.get(name, ""), value]))
            value = betas(joined, beta_families)
            if not value:
                headers.pop(name, None)
                continue
        headers[name] = value
    headers["accept-encoding"] = "identity"
    if anthropic:
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    headers.update(key_headers)
    return headers


def returned(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's response headers the caller gets: `RETURNED` only."""
    return [(name, value) for name, value in items if name.lower() in RETURNED]


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
