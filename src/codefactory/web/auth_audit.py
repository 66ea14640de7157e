"""Audit events of logins: `login` for each person let in, `login-refused` for refusals,
aggregated so that a flood of bad tokens or forged callbacks costs one event per source and
reason per minute, never one per request, and carries only capped, hashed untrusted text.

The aggregation key is bounded: the reason is a word of `REASONS` (anything else is counted
as `other`), the source the client's address (IPv6 by its /64 network, which one host holds),
and at most `MAX_KEYS` pairs are counted apart in a minute."""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from codefactory.audit.events import Login, LoginRefused
from codefactory.audit.port import AuditLog
from codefactory.identity.directory import Person

WINDOW_S = 60.0
MAX_KEYS = 200
"""Distinct (source, reason) pairs counted per window; more are counted under source `*`."""
MAX_TEXT = 200
OAUTH_ERRORS = frozenset(
    {
        # RFC 6749 §4.1.2.1 and §5.2
        "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
        "invalid_scope", "server_error", "temporarily_unavailable", "invalid_client",
        "invalid_grant", "unsupported_grant_type",
        # OpenID Connect Core §3.1.2.6
        "interaction_required", "login_required", "account_selection_required",
        "consent_required", "invalid_request_uri", "invalid_request_object",
        "request_not_supported", "request_uri_not_supported", "registration_not_supported",
    }
)  # fmt: skip
"""The error codes a provider may answer with; any other is `provider-error`."""
REASONS = OAUTH_ERRORS | {
    # TokenRefused.reason
    "expired", "audience", "issuer", "signature", "algorithm", "unknown-key", "malformed",
    "type", "missing-claim", "not-yet-valid", "nonce",
    # the login's own
    "mismatching_state", "state-replayed", "provider-error", "id-token", "unknown-subject",
    "refused-subject", "session-ended",
}  # fmt: skip
"""Every reason a `login-refused` event may carry."""


@dataclass
class _Window:
    started: float
    count: int = 0
    sample: dict[str, Any] = field(default_factory=dict)


class LoginAudit:
    """Writes `login` and (aggregated) `login-refused` events to the audit log."""

    def __init__(self, audit: AuditLog, *, clock: Callable[[], float] = time.time) -> None:
        self._audit = audit
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], _Window] = {}

    def login(self, person: Person, *, subject: str, method: str, token: str = "") -> None:
        """One person authenticated through the provider (`method`: `browser` or `bearer`;
        `token`: the bearer token's digest, never the token)."""
        self._audit.append(
            Login(actor=person.actor, subject=capped(subject), method=method, token=token or None)
        )

    def refused(self, source: str, reason: str, detail: str = "", **facts: str) -> None:
        """A refused login or token from `source` (the client address). The first refusal of
        a (source, reason) pair in a minute is written at once with its detail; the rest of
        that minute are counted and written as one event when the minute is over."""
        now = self._clock()
        due = self._due(now)
        reason = reason if reason in REASONS else "other"
        with self._lock:
            key = (source_of(source), reason)
            if key not in self._windows and len(self._windows) >= MAX_KEYS:
                key = ("*", reason)
            window = self._windows.get(key)
            first = window is None
            if window is None:
                self._windows[key] = _Window(started=now)  # counts the ones after this
            else:
                window.count += 1
        if first:
            sample = {name: capped(value) for name, value in facts.items()}
            self._write(key, count=1, started=now, detail=detail, sample=sample)
        for old_key, old in due:
            self._write(old_key, count=old.count, started=old.started, detail="", sample={})

    def flush(self) -> None:
        """Write every window's pending count (at shutdown)."""
        for key, window in self._due(float("inf")):
            self._write(key, count=window.count, started=window.started, detail="", sample={})

    def _due(self, now: float) -> list[tuple[tuple[str, str], _Window]]:
        with self._lock:
            over = [(k, w) for k, w in self._windows.items() if now - w.started >= WINDOW_S]
            for key, _ in over:
                del self._windows[key]
        return [(key, window) for key, window in over if window.count]

    def _write(
        self,
        key: tuple[str, str],
        *,
        count: int,
        started: float,
        detail: str,
        sample: dict[str, str],
    ) -> None:
        source, reason = key
        self._audit.append(
            LoginRefused(
                actor="anonymous",
                source=capped(source),
                reason=reason,
                count=count,
                window_start=datetime.fromtimestamp(started, UTC).isoformat(),
                detail=capped(detail) if detail else None,
                error=sample.get("error"),
                state=sample.get("state"),
                subject=sample.get("subject"),
                token=sample.get("token"),
            )
        )


def oauth_reason(error: str | None) -> str:
    """The refusal reason for a provider's (or the callback's) OAuth `error` code: the code
    when it is one of the standard ones, else `provider-error`."""
    return error if error in OAUTH_ERRORS else "provider-error"


def source_of(address: str) -> str:
    """The aggregation source of a client `address`: an IPv4 address as it is, an IPv6 one as
    its /64 network (one host holds a whole /64), anything else `unknown`."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6 and not ip.is_loopback:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def capped(text: str) -> str:
    """Untrusted text for the audit log: escaped, at most `MAX_TEXT` characters, and when
    longer its SHA-256 appended so two long values can still be told apart."""
    shown = text.encode("unicode_escape").decode("ascii")
    if len(shown) <= MAX_TEXT:
        return shown
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{shown[:MAX_TEXT]}… sha256:{digest}"


def token_digest(token: str) -> str:
    """How the audit log names a presented token: its SHA-256, never the token."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
