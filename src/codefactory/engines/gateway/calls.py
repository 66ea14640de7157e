"""One call as the gateway handles it: what it knows so far, and its records."""

from __future__ import annotations

import datetime
import hashlib
import time
from dataclasses import dataclass, field

from codefactory.engines.gateway.grants import Grant, Reservation
from codefactory.engines.gateway.protocols import Endpoint
from codefactory.engines.gateway.records import ModelCall, Outcome
from codefactory.engines.gateway.usage import Usage


def sha256(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


@dataclass(kw_only=True)
class CallContext:
    """A call in flight: filled in as the gateway learns who sent it and what it asks."""

    method: str
    path: str
    body: bytes
    anthropic: bool
    """Whether errors answer in Anthropic's shape."""
    endpoint: Endpoint | None = None
    grant: Grant | None = None
    model: str = ""
    upstream: str = ""
    reservation: Reservation | None = None
    """The call's hold on its run's budget once admitted; settled or released at its end."""
    started: float = field(default_factory=time.perf_counter)
    started_at: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC)
    )

    @property
    def run_id(self) -> str:
        """The run the call speaks for ("" when unknown)."""
        return self.grant.run_id if self.grant else ""

    def record(
        self,
        *,
        status: int,
        outcome: Outcome,
        response: bytes,
        attempt: int = 0,
        streamed: bool = False,
        usage: Usage | None = None,
        estimated: bool = False,
        cost_usd: float = 0.0,
        error: str = "",
    ) -> ModelCall:
        """The `ModelCall` of this call (or of one upstream attempt of it)."""
        grant = self.grant
        return ModelCall(
            run_id=grant.run_id if grant else "",
            agent_id=grant.agent_id if grant else "",
            sponsor=grant.sponsor if grant else "",
            engine=grant.engine if grant else "",
            protocol=self.endpoint.protocol.value if self.endpoint else "unknown",
            method=self.method,
            path=self.path,
            model=self.model,
            status=status,
            attempt=attempt,
            streamed=streamed,
            request_sha256=sha256(self.body),
            response_sha256=sha256(response),
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            cost_usd=cost_usd,
            usage_estimated=estimated,
            duration_s=time.perf_counter() - self.started,
            outcome=outcome,
            error=error,
            upstream=self.upstream if attempt else "",
            started_at=self.started_at.isoformat(),
        )
