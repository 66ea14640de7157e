"""Calls without a valid credential, recorded in aggregate.

Anyone who can reach the listener can send calls without a valid credential; recording each
one would let them grow the audit log by one event per request. So the first such call of a
kind (same outcome, same run if a revoked or expired credential names one, same reason) is
recorded at once, and the ones after it are counted and recorded as one record with their
`count` once `interval_s` has passed since the last record of that kind, or when the gateway
stops. The kinds are few (the reasons are fixed texts; a run id comes only from a credential
the factory granted), so the records are at most a few per interval whatever arrives.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, replace

from codefactory.engines.gateway.records import ModelCall

_Key = tuple[str, str, str]


@dataclass
class _Window:
    opened: float
    first: ModelCall | None = None
    count: int = 0


class RefusalTally:
    """Counts refused calls by kind; thread-safe."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._windows: dict[_Key, _Window] = {}

    def add(self, call: ModelCall, now: float | None = None) -> list[ModelCall]:
        """Count `call`; the records to write now (the call itself when it is the first of
        its kind in an interval, an aggregate when an interval of counted calls is over)."""
        now = time.monotonic() if now is None else now
        key = (str(call.outcome), call.run_id, call.error)
        with self._lock:
            window = self._windows.get(key)
            if window is None or (window.count == 0 and now - window.opened >= self.interval_s):
                self._windows[key] = _Window(opened=now)
                return [call]
            if window.first is None:
                window.first = call
            window.count += 1
            return self._due(now, only=key)

    def due(self, now: float | None = None) -> list[ModelCall]:
        """Aggregates of every kind whose interval is over."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._due(now)

    def drain(self) -> list[ModelCall]:
        """Aggregates of every kind with counted calls, whatever the time (at stop)."""
        with self._lock:
            return self._due(float("inf"))

    def _due(self, now: float, only: _Key | None = None) -> list[ModelCall]:
        out = []
        for key, window in self._windows.items():
            if only is not None and key != only:
                continue
            if window.count and window.first is not None and now - window.opened >= self.interval_s:
                out.append(replace(window.first, count=window.count))
                opened = now if math.isfinite(now) else time.monotonic()
                window.opened, window.first, window.count = opened, None, 0
        return out
