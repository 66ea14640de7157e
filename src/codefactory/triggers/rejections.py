"""Rejected deliveries, rate-limited and counted: one audit event per source, reason and
minute instead of one per request, and a 429 for a client past its budget.

An unauthenticated caller must not be able to grow the audit log at will: each rejection
only bumps a counter (`RejectionTally`), flushed as one `webhook-rejections` event per
(source, reason, status) when the minute rolls over and at shutdown. Untrusted text kept in
it (the first delivery id and reason seen) is cut short and accompanied by its SHA-256.
`RejectionBudget` answers whether a (source, client address) may still be answered with
its own error this minute; intake asks it only once a delivery has failed verification, so a
delivery whose signature verifies is never refused by it. The client is the connection's
peer address as the server gives it (forwarded headers are the server's business).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from codefactory.triggers.tally import Clock, MinuteTally, minute_of, minute_start


def capped(value: str, limit: int) -> dict[str, str]:
    """Untrusted text for an audit record: at most `limit` characters and its SHA-256."""
    return {
        "text": value[:limit],
        "sha256": hashlib.sha256(value.encode("utf-8", "replace")).hexdigest(),
        "chars": str(len(value)),
    }


@dataclass(kw_only=True)
class RejectionCount:
    """Rejections of one source, reason and status in one minute."""

    source: str
    reason: str
    status: int
    minute: int
    count: int = 0
    clients: set[str] = field(default_factory=set)
    first_delivery_id: str = ""
    first_detail: str = ""

    def audit_data(self, limit: int) -> dict[str, Any]:
        """The fields of the `webhook-rejections` event."""
        return {
            "source": self.source,
            "reason": self.reason,
            "status": self.status,
            "count": self.count,
            "minute": minute_start(self.minute),
            "clients": len(self.clients),
            "first_delivery_id": capped(self.first_delivery_id, limit),
            "first_detail": capped(self.first_detail, limit),
        }


class RejectionTally(MinuteTally[tuple[str, str, int], RejectionCount]):
    """Counts rejections per (source, reason, status) and minute; thread-safe.

    `flush` (called by `count` when the minute rolls over, and by the owner once a minute and
    at shutdown) hands each finished count to `publish`, outside the lock. `reason` is an
    error's code (a fixed vocabulary), never the caller's text.
    """

    def count(
        self, *, source: str, reason: str, status: int, client: str, delivery_id: str, detail: str
    ) -> None:
        """Count one rejection; publishes the previous minute's counts first if it ended."""

        def new(minute: int) -> RejectionCount:
            return RejectionCount(
                source=source,
                reason=reason,
                status=status,
                minute=minute,
                first_delivery_id=delivery_id,
                first_detail=detail,
            )

        def update(entry: RejectionCount) -> None:
            if len(entry.clients) < 1000:  # a count of distinct clients, bounded
                entry.clients.add(client)

        self.add((source, reason, status), new, update)


class RejectionBudget:
    """At most `per_minute` rejections per (source, client address) in a minute; thread-safe.

    Consulted on the failure path only: past the budget a failed delivery is answered 429
    instead of its own error, and a valid one is still accepted."""

    def __init__(self, per_minute: int, *, clock: Clock = time.time) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._minute = minute_of(clock())
        self._spent: dict[tuple[str, str], int] = {}

    def exhausted(self, source: str, client: str) -> bool:
        """Whether this client has used up its rejections for `source` this minute."""
        with self._lock:
            self._roll()
            return self._spent.get((source, client), 0) >= self.per_minute

    def spend(self, source: str, client: str) -> None:
        """Record one rejection of this client."""
        with self._lock:
            self._roll()
            key = (source, client)
            if key in self._spent or len(self._spent) < 100_000:  # bounded memory
                self._spent[key] = self._spent.get(key, 0) + 1

    def _roll(self) -> None:
        now = minute_of(self._clock())
        if now != self._minute:
            self._minute = now
            self._spent.clear()
