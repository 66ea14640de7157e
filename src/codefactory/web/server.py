"""The HTTP server under the app: uvicorn with deadlines, a minimum data rate, per-client
connection limits and fair shedding.

uvicorn closes idle keep-alive connections, but a connection that never sends its request
headers, or sends them (or its body) a byte at a time, would stay open for ever; enough of
them exhaust the server. `GuardedH11Protocol` adds:

- deadlines for headers and bodies (nginx's `client_header_timeout`/`client_body_timeout`);
- a minimum data rate (Apache `mod_reqtimeout`'s MinRate): once `rate_grace_s` has passed, a
  request's headers or body arriving slower than `min_rate_bytes_s` on average close the
  connection (time the server itself stopped reading does not count);
- at most `max_connections_per_client` open connections per client address (the socket's
  peer, an IPv6 one by its /64; a trusted proxy's connections are exempt): one more closes
  that client's idle or slowest connection;
- at most `max_connections` in all: one more closes a connection of the client holding the
  most, an idle one first, then the slowest sender, a request being served last. One client
  with many slow connections therefore sheds its own, never another client's.

Forwarded headers (`X-Forwarded-For`, `X-Forwarded-Proto`) are believed only from
`web.trusted_proxies` (uvicorn's `proxy_headers` is off without them).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from codefactory.web.auth_audit import source_of
from codefactory.web.settings import ServerLimits, is_trusted_proxy

CHECK_EVERY_S = 0.5
"""How often a connection receiving a request checks its data rate."""


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines, the minimum rate and the connection limits."""

    limits = ServerLimits()
    trusted_proxies: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_kind = ""
        self._rate_check: asyncio.TimerHandle | None = None
        self._phase_started = time.monotonic()
        self._phase_bytes = 0
        self._idle_since = time.monotonic()
        self.peer = ""
        self.exempt = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else ""
        self.exempt = is_trusted_proxy(address, self.trusted_proxies)
        self.peer = source_of(address)  # an IPv6 client by its /64: one host holds it all
        self._arm("head", self.limits.header_timeout_s)
        self._enforce_limits()

    def data_received(self, data: bytes) -> None:
        self._phase_bytes += len(data)
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

    def rate(self) -> float:
        """Bytes per second received in the current phase (headers or body) so far."""
        elapsed = time.monotonic() - self._phase_started
        return self._phase_bytes / elapsed if elapsed > 0 else float("inf")

    def shed_rank(self, newcomer: GuardedH11Protocol) -> tuple[int, float]:
        """Lower is closed first: idle between requests (0), receiving a request, slowest
        first (1; the newcomer counts as fastest), a request being served (2)."""
        if self is not newcomer and not self._deadline_kind and self.waiting_for_head():
            return (0, self._idle_since)
        if self._deadline_kind:
            return (1, float("inf") if self is newcomer else self.rate())
        return (2, 0.0)

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
        self._phase_started, self._phase_bytes = time.monotonic(), 0
        if self.limits.min_rate_bytes_s > 0:
            self._rate_check = self.loop.call_later(self.limits.rate_grace_s, self._check_rate)

    def _disarm(self) -> None:
        for timer in (self._deadline, self._rate_check):
            if timer is not None:
                timer.cancel()
        self._deadline, self._rate_check, self._deadline_kind = None, None, ""

    def _expire(self) -> None:
        self._disarm()
        self._close()

    def _check_rate(self) -> None:
        self._rate_check = None
        if not self._deadline_kind or self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server is not reading: not the client's slowness
            self._phase_started, self._phase_bytes = time.monotonic(), 0
        elif self.rate() < self.limits.min_rate_bytes_s:
            self._expire()
            return
        self._rate_check = self.loop.call_later(CHECK_EVERY_S, self._check_rate)

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def _open(self) -> list[GuardedH11Protocol]:
        return [
            other
            for other in self.connections
            if isinstance(other, GuardedH11Protocol) and not other.transport.is_closing()
        ]

    def _enforce_limits(self) -> None:
        others = self._open()
        mine = [other for other in others if other.peer == self.peer]
        if not self.exempt and len(mine) > self.limits.max_connections_per_client:
            min(mine, key=lambda other: other.shed_rank(self))._close()
            others = self._open()
        if len(others) <= self.limits.max_connections:
            return
        held = Counter(
            other.peer for other in others if not is_trusted_proxy(other.peer, self.trusted_proxies)
        )
        victim = min(others, key=lambda other: (-held.get(other.peer, 0), other.shed_rank(self)))
        victim._close()


def guarded_protocol(
    limits: ServerLimits, trusted_proxies: Sequence[str] = ()
) -> type[GuardedH11Protocol]:
    """`GuardedH11Protocol` bound to `limits` (uvicorn makes one instance per connection)."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"limits": limits, "trusted_proxies": tuple(trusted_proxies)},
    )


def server_config(
    app: Any,
    *,
    host: str,
    port: int,
    limits: ServerLimits,
    trusted_proxies: Sequence[str] = (),
    log_level: str = "warning",
) -> uvicorn.Config:
    """A uvicorn configuration serving `app` on `host:port` within `limits`; forwarded
    headers are believed only from `trusted_proxies` (addresses or networks), none by
    default."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # uvicorn's loggers reach the root handler (JSON lines, run ids)
        http=guarded_protocol(limits, trusted_proxies),
        timeout_keep_alive=limits.keep_alive_s,
        limit_concurrency=2 * limits.max_connections,  # requests in flight, a second belt
        h11_max_incomplete_event_size=limits.max_header_bytes,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or [],
    )
