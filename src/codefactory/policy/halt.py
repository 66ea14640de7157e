"""The organisation-wide halt, as policy sees it: while the factory is halted, every
authorization is a deny whose reason names the halt.

`HaltWatch` answers "is the factory halted, by whom, why?" from the store (`store/halts.py`),
read at most once per `ttl_s` (1 s) per process, so `serve` and every Celery worker on every
machine learn of a halt within about a second of `codefactory halt` without any message
between them. `HaltingPolicy` wraps any `PolicyEngine`: intake's check, the packaging check,
tool calls and context reads are all refused with `halted by <who> at <time>: <reason>`, and
the loop records the decision like any other (a run received during a halt ends `refused`;
its delivery stays stored and acknowledged).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from codefactory.domain import Decision
from codefactory.policy.port import AuthorizationRequest, PolicyEngine

HALT_POLICY_ID = "organisation-halt"
"""The policy id a halt's refusal carries in decisions and audit events."""

HaltReader = Callable[[], str | None]
"""Reads the store: the halt in force described (`Halt.describe`), or None."""


class HaltWatch:
    """The halt in force, read from the store at most once per `ttl_s` seconds (thread-safe).

    `current()` returns the halt's description (`halted by … at …: …`) or None. A read that
    fails (the database unreachable) is not taken for "not halted": the last answer stands
    and the error is raised once the last good answer is older than `stale_s`, so a worker
    cut off from the store stops rather than runs on unchecked.
    """

    def __init__(
        self,
        read: HaltReader,
        *,
        ttl_s: float = 1.0,
        stale_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.ttl_s = ttl_s
        self.stale_s = stale_s
        self._clock = clock
        self._lock = threading.Lock()
        self._value: str | None = None
        self._read_at: float | None = None

    def current(self) -> str | None:
        """The halt in force described, or None; at most `ttl_s` old."""
        with self._lock:
            now = self._clock()
            if self._read_at is not None and now - self._read_at < self.ttl_s:
                return self._value
            try:
                self._value = self._read()
            except Exception:
                if self._read_at is None or now - self._read_at > self.stale_s:
                    raise
                return self._value
            self._read_at = now
            return self._value

    def forget(self) -> None:
        """Drop the cached answer: the next `current()` reads the store."""
        with self._lock:
            self._read_at = None


def halted_decision(description: str) -> Decision:
    """The deny every authorization gets during a halt."""
    return Decision(allowed=False, policy_ids=(HALT_POLICY_ID,), reasons=(description,))


class HaltingPolicy:
    """A `PolicyEngine` that denies everything while the factory is halted, and otherwise
    asks the policy it wraps."""

    def __init__(self, inner: PolicyEngine, watch: HaltWatch) -> None:
        self.inner = inner
        self.watch = watch

    def authorize(
        self,
        *,
        principal: str,
        action: str,
        resource: str,
        context: Mapping[str, Any],
        entities: Sequence[Mapping[str, Any]] = (),
    ) -> Decision:
        """`PolicyEngine.authorize`, refused with the halt's description during a halt."""
        halt = self.watch.current()
        if halt is not None:
            return halted_decision(halt)
        return self.inner.authorize(
            principal=principal, action=action, resource=resource, context=context,
            entities=entities,
        )  # fmt: skip

    def authorize_batch(
        self,
        requests: Sequence[AuthorizationRequest],
        entities: Sequence[Mapping[str, Any]] = (),
    ) -> list[Decision]:
        """`PolicyEngine.authorize_batch`, every request refused during a halt."""
        halt = self.watch.current()
        if halt is not None:
            return [halted_decision(halt) for _ in requests]
        return self.inner.authorize_batch(requests, entities)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # the wrapped policy's `text`, `source`, ...
