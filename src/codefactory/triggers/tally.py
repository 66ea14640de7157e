"""Counts per key and minute, published as one record per key when the minute is over.

The aggregation behind the `webhook-rejections` and `webhook-duplicate` audit events: a
request the factory cannot tell from an attacker's only bumps a counter, so no caller can
grow the audit log faster than one record per key and minute. Keys must come from a fixed
vocabulary or from signed content (a payload digest), never from a request's unsigned parts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

Clock = Callable[[], float]


def minute_of(moment: float) -> int:
    """The minute (since the epoch) `moment` (seconds) falls in."""
    return int(moment // 60)


def minute_start(minute: int) -> str:
    """The ISO 8601 UTC time at which `minute` (since the epoch) starts."""
    return datetime.fromtimestamp(minute * 60, UTC).isoformat()


class Counted(Protocol):
    """An entry of a tally: how many times its key was seen this minute."""

    count: int


class SourceCount(Counted, Protocol):
    """A finished entry of a webhook source's tally, as one audit event publishes it."""

    source: str

    def audit_data(self, limit: int) -> dict[str, Any]:
        """The event's fields; untrusted text in them is cut to `limit` characters."""
        ...


K = TypeVar("K", bound=Hashable)
E = TypeVar("E", bound=Counted)


class MinuteTally(Generic[K, E]):
    """Entries per key for the current minute; thread-safe.

    `add(key, new, update)` creates the key's entry with `new(minute)` the first time in a
    minute, then calls `update(entry)` under the lock. `flush` (called by `add` when the
    minute rolls over, and by the owner once a minute and at shutdown) hands the finished
    entries to `publish`, outside the lock. The keys are bounded by their origin (a fixed
    vocabulary, signed content), so the entries of a minute are too.
    """

    def __init__(
        self,
        publish: Callable[[list[E]], None],
        *,
        clock: Clock = time.time,
    ) -> None:
        self._publish = publish
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[K, E] = {}
        self._minute = minute_of(clock())

    def add(self, key: K, new: Callable[[int], E], update: Callable[[E], None]) -> None:
        """Count `key` once (publishing the previous minute's entries first if it ended)."""
        self.flush(only_ended=True)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = new(self._minute)
                self._entries[key] = entry
            entry.count += 1
            update(entry)

    def flush(self, *, only_ended: bool = False) -> list[E]:
        """Publish and forget the entries (with `only_ended`, only when their minute is
        over); returns what was published."""
        with self._lock:
            now = minute_of(self._clock())
            if only_ended and now == self._minute:
                return []
            ended = list(self._entries.values())
            self._entries.clear()
            self._minute = now
        if ended:
            self._publish(ended)
        return ended

    def pending(self) -> int:
        """Counts not yet published."""
        with self._lock:
            return sum(entry.count for entry in self._entries.values())
