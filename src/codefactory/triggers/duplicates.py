"""Repeated deliveries, counted: one `webhook-duplicate` audit event per source, payload
digest and minute instead of one per request.

A captured signed body can be replayed at will under fresh unsigned delivery ids; each
replay answers with the first delivery's run and only bumps a counter here. The key is the
source and the digest of the signed body (an attacker cannot mint new ones without the
secret); the replays' delivery ids, unsigned, are kept only as a count of distinct ids and
the first one, cut short beside its SHA-256 (`rejections.capped`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from codefactory.triggers.rejections import capped
from codefactory.triggers.tally import MinuteTally, minute_start

MAX_DISTINCT_IDS = 1000
"""Distinct delivery ids remembered per entry (only to count them; hashes, not the ids)."""


@dataclass(kw_only=True)
class DuplicateCount:
    """Repeats of one signed body from one source in one minute."""

    source: str
    payload_digest: str
    minute: int
    run_id: str
    first_delivery_id: str
    count: int = 0
    repeated_ids: set[str] = field(default_factory=set)
    first_repeated_id: str = ""

    def audit_data(self, limit: int) -> dict[str, Any]:
        """The fields of the `webhook-duplicate` event: `first_delivery_id` is the stored
        delivery's (checked at intake), `delivery_id` the first repeat's, capped and hashed."""
        return {
            "source": self.source,
            "payload_digest": self.payload_digest,
            "run_id": self.run_id,
            "first_delivery_id": self.first_delivery_id,
            "count": self.count,
            "minute": minute_start(self.minute),
            "delivery_ids": len(self.repeated_ids),
            "delivery_id": capped(self.first_repeated_id, limit),
        }


class DuplicateTally(MinuteTally[tuple[str, str], DuplicateCount]):
    """Counts repeated deliveries per (source, payload digest) and minute; thread-safe."""

    def count(
        self, *, source: str, payload_digest: str, run_id: str, first_delivery_id: str,
        delivery_id: str,
    ) -> None:  # fmt: skip
        """Count one repeat of the body `payload_digest` under `delivery_id` (unsigned)."""

        def new(minute: int) -> DuplicateCount:
            return DuplicateCount(
                source=source,
                payload_digest=payload_digest,
                minute=minute,
                run_id=run_id,
                first_delivery_id=first_delivery_id,
                first_repeated_id=delivery_id,
            )

        hashed = hashlib.sha256(delivery_id.encode("utf-8", "replace")).hexdigest()

        def update(entry: DuplicateCount) -> None:
            if len(entry.repeated_ids) < MAX_DISTINCT_IDS:
                entry.repeated_ids.add(hashed)

        self.add((source, payload_digest), new, update)
