"""Audit events of logins: `login` for each person let in, `login-refused` for refusals,
aggregated so that a flood of bad tokens or forged callbacks costs one event per source and
reason per minute, never one per request, and carries only capped, hashed untrusted text."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from codefactory.audit.port import AuditLog
from codefactory.domain import AuditEvent
from codefactory.identity.directory import Person

WINDOW_S = 60.0
MAX_KEYS = 200
"""Distinct (source, reason) pairs counted per window; more are counted under source `*`."""
MAX_TEXT = 200


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
        data = {"subject": capped(subject), "method": method}
        if token:
            data["token"] = token
        self._append("login", person.actor, data)

    def refused(self, source: str, reason: str, detail: str = "", **facts: str) -> None:
        """A refused login or token from `source` (the client address). The first refusal of
        a (source, reason) pair in a minute is written at once with its detail; the rest of
        that minute are counted and written as one event when the minute is over."""
        now = self._clock()
        due = self._due(now)
        with self._lock:
            key = (source, reason)
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
        data: dict[str, Any] = {
            "source": capped(source),
            "reason": reason,
            "count": count,
            "window_start": datetime.fromtimestamp(started, UTC).isoformat(),
        }
        if detail:
            data["detail"] = capped(detail)
        data.update(sample)
        self._append("login-refused", "anonymous", data)

    def _append(self, name: str, actor: str, data: dict[str, Any]) -> None:
        self._audit.append(AuditEvent(name=name, actor=actor, data=data, at=datetime.now(UTC)))


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
