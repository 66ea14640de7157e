"""The HTTP server under the app: uvicorn with deadlines and a connection cap.

uvicorn closes idle keep-alive connections, but a connection that never sends its request
headers, or sends them (or its body) a byte at a time, would stay open for ever; enough of
them exhaust the server. `GuardedH11Protocol` adds what nginx calls `client_header_timeout`
and `client_body_timeout`, and caps open connections: one more than `max_connections` closes
the connection that has waited longest for its request headers (an idle one yields to a new
caller), or is itself closed when every connection is busy with a request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from codefactory.web.settings import ServerLimits


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines and the connection cap."""

    limits = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_kind = ""
        self._idle_since = time.monotonic()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head", self.limits.header_timeout_s)
        self._enforce_cap()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_since = time.monotonic()
        self._disarm()  # the keep-alive timeout governs until the next byte
        if self.conn.their_state is not h11.IDLE:
            self._track()  # a pipelined request is already under way

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def waiting_for_head(self) -> bool:
        """No request under way: a new connection, or one between keep-alive requests."""
        idle = self.cycle is None or self.cycle.response_complete
        return idle and self.conn.their_state is h11.IDLE

    def _track(self) -> None:
        state = self.conn.their_state
        if state is h11.IDLE and self.waiting_for_head():
            if self._deadline_kind != "head":
                self._arm("head", self.limits.header_timeout_s)
        elif state is h11.SEND_BODY:
            if self._deadline_kind != "body":
                self._arm("body", self.limits.body_timeout_s)
        else:
            self._disarm()

    def _arm(self, kind: str, seconds: float) -> None:
        self._disarm()
        self._deadline_kind = kind
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._deadline_kind = None, ""

    def _expire(self) -> None:
        self._deadline, self._deadline_kind = None, ""
        if not self.transport.is_closing():
            self.transport.close()

    def _enforce_cap(self) -> None:
        if len(self.connections) <= self.limits.max_connections:
            return
        idle = [
            other
            for other in self.connections
            if isinstance(other, GuardedH11Protocol)
            and other is not self
            and not other.transport.is_closing()
            and other.waiting_for_head()
        ]
        victim = min(idle, key=lambda other: other._idle_since, default=self)
        victim.transport.close()


def guarded_protocol(limits: ServerLimits) -> type[GuardedH11Protocol]:
    """`GuardedH11Protocol` bound to `limits` (uvicorn makes one instance per connection)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def server_config(
    app: Any, *, host: str, port: int, limits: ServerLimits, log_level: str = "warning"
) -> uvicorn.Config:
    """A uvicorn configuration serving `app` on `host:port` within `limits`."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive_s,
        limit_concurrency=2 * limits.max_connections,  # requests in flight, a second belt
        h11_max_incomplete_event_size=limits.max_header_bytes,
    )
