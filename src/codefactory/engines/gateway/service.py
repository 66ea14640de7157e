"""`ModelGateway`: the harness-owned HTTPS endpoint every language-model engine uses as its
model base URL.

Each call is answered in this order, every answer in the caller's provider's error shape
(`protocols.error_body`) and every one recorded as a `ModelCall`:

1. credential (`Authorization: Bearer`, `x-api-key` or `api-key`) unknown, revoked or past
   its grant's `budget.wall_s` → 401 (`unauthenticated`), decided from the headers before
   any byte of the body is read; these are recorded in aggregate (`tally.py`);
2. method and path not served → 404 (`unknown-endpoint`); `GET /v1/models[/{id}]` is
   answered from the grant (its model and `extra_models`, OpenAI's shape or Anthropic's
   when `anthropic-version` is sent; an id outside `[A-Za-z0-9._:-]` → 400, another model
   → 404 `model-refused`), never from the upstream;
3. body over `max_request_bytes` (by `content-length` before reading, or while reading) →
   413; not received within `body_timeout_s` → 408; the caller leaving → recorded
   `caller-disconnected`; body not JSON (too deep, an integer too long included), no
   `model`, non-boolean `stream` → 400 (`bad-request`);
4. a model the grant does not allow, or one without a price while the budget caps cost →
   403 (`model-refused`); provider-side tools, MCP servers, `store: true`, ... → 400
   (`tool-refused`) (`screening.py`);
5. no upstream configured → 503 (`no-upstream`);
6. `max_concurrent_calls` of the run in flight → 429 with `retry-after` (`concurrency-limit`);
   run budget spent, counting the worst case held by calls in flight → 429 (`budget-spent`,
   OpenAI type `insufficient_quota`, Anthropic `rate_limit_error`, message
   `run budget spent: output_tokens 200000/200000`); each admitted call holds its worst
   case (its `max_tokens`, else what is left of the output cap; its size as input tokens)
   until its answer is accounted;
7. forwarded to the upstream (`upstream.py`), body byte for byte, with an allow-list of
   headers (`headers.py`); 429/500/502/503/529 retried up to `settings.retries` times within
   `max_retry_after_s` and the budget (`retried`); unreachable → 502, timeout → 504; an
   answer longer than `max_response_bytes` → 502 (a stream is cut, `truncated`); SSE
   streamed through as it arrives, a stream without its end event recorded `truncated`;
   every attempt appended to the run's cassette `<traffic_dir>/<run_id>.yaml`.

Refusals carry `x-should-retry: false`, which the OpenAI and Anthropic SDKs honour (not the
`concurrency-limit` one, which waiting cures). Uvicorn serves the app with TLS in one daemon
thread and one event loop for every run, at most `max_connections` connections, each of
which must send a complete request head within `header_timeout_s`.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from codefactory.engines.gateway.app import SideApp, build_gateway_app
from codefactory.engines.gateway.cassette import CassetteWriter
from codefactory.engines.gateway.content_scan import ContentScan
from codefactory.engines.gateway.errors import (
    GatewayConfigError,
    GatewayError,
    GatewayNotStarted,
)
from codefactory.engines.gateway.grants import GrantTable
from codefactory.engines.gateway.protocols import MODEL_PROTOCOLS, WireProtocol
from codefactory.engines.gateway.records import CallSink
from codefactory.engines.gateway.relay import Relay
from codefactory.engines.gateway.tls import GatewayCertificates, ensure_certificates
from codefactory.engines.gateway.upstream import Upstream, parse_upstream
from codefactory.engines.session import Budget, ModelAccess, Spend
from codefactory.engines.settings import GatewaySettings

START_TIMEOUT_S = 10.0


def _replay_app(upstream: Upstream, *, strict: bool = False) -> ASGIApp:
    assert upstream.replay_path is not None
    try:
        replay = importlib.import_module("codefactory.engines.replay")
    except ImportError as error:
        raise GatewayConfigError(
            f"upstream replay:{upstream.replay_path}: the replay upstream is unavailable: {error}"
        ) from error
    try:
        app: ASGIApp = replay.build_replay_app(upstream.replay_path, strict=strict)
    except (ValueError, OSError) as error:  # TranscriptError is a ValueError
        raise GatewayConfigError(f"upstream replay:{upstream.replay_path}: {error}") from error
    return app


def guarded_protocol(*, header_timeout_s: float, max_connections: int) -> type[H11Protocol]:
    """Uvicorn's h11 protocol that closes a connection beyond `max_connections` at once, and
    one that has not sent a complete request head `header_timeout_s` after it opened or
    after its last response (uvicorn's keep-alive timer stops once any byte arrives)."""

    class Guarded(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.close()
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.cycle is None or self.cycle.response_complete:
                self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return Guarded


class ModelGateway:
    """The model gateway: grants credentials per run, serves calls over HTTPS on
    `settings.bind`, forwards them to the upstream and records each through `on_call`.

    `state_dir` holds the CA and the gateway certificate (`tls.py`); `traffic_dir` the
    per-run cassettes; `grants` the credential table (shared with the side apps that
    authenticate runs by the same credential, e.g. the context engine's MCP endpoint);
    `content_scan` the second look at every request (the bank's masking patterns);
    `halted` the organisation-wide halt in force, described (every call refused while one is).
    Raises `GatewayConfigError` for a malformed upstream or a missing
    `upstream_ca` or transcript file."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        state_dir: Path,
        traffic_dir: Path,
        on_call: CallSink,
        grants: GrantTable | None = None,
        side_apps: Sequence[SideApp] = (),
        content_scan: ContentScan | None = None,
        halted: Callable[[], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.upstream = parse_upstream(settings.upstream)
        if settings.upstream_ca is not None and not settings.upstream_ca.is_file():
            raise GatewayConfigError(f"upstream_ca: no CA file at {settings.upstream_ca}")
        replay = (
            _replay_app(self.upstream, strict=settings.replay_strict)
            if self.upstream and self.upstream.kind == "replay"
            else None
        )
        self.grants = grants if grants is not None else GrantTable()
        self.cassettes = CassetteWriter(traffic_dir)
        self._relay = Relay(
            settings=settings,
            upstream=self.upstream,
            grants=self.grants,
            cassettes=self.cassettes,
            on_call=on_call,
            replay_app=replay,
            content_scan=content_scan,
            halted=halted,  # the organisation-wide halt refuses every model call
        )
        self._app = build_gateway_app(self._relay, side_apps)
        self._lock = threading.Lock()
        self._certificates: GatewayCertificates | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    def start(self) -> None:
        """Serve on `settings.bind:settings.port` (0: a free port, kept across restarts);
        returns once the listener accepts TLS connections. Idempotent."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            certificates = self._ensure_certificates()
            listener = socket.create_server((self.settings.bind, self._port or self.settings.port))
            # Accepted connections inherit it: without, uvicorn's separate header and body
            # writes wait out the client's delayed ACK (about 40 ms per response on Linux).
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._port = int(listener.getsockname()[1])
            config = uvicorn.Config(
                self._app,
                ssl_certfile=str(certificates.cert_file),
                ssl_keyfile=str(certificates.key_file),
                log_level="warning",
                access_log=False,
                lifespan="on",
                server_header=False,
                date_header=False,
                timeout_graceful_shutdown=5,
                http=guarded_protocol(
                    header_timeout_s=self.settings.header_timeout_s,
                    max_connections=self.settings.max_connections,
                ),
                limit_concurrency=self.settings.max_connections,
                timeout_keep_alive=max(1, round(self.settings.keep_alive_s)),
                h11_max_incomplete_event_size=self.settings.max_header_bytes,
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(
                target=server.run,
                kwargs={"sockets": [listener]},
                daemon=True,
                name="model-gateway",
            )
            thread.start()
            self._wait_started(server, thread)
            self._server, self._thread = server, thread

    @staticmethod
    def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                raise GatewayError(f"the model gateway did not start within {START_TIMEOUT_S}s")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving (streams in flight get 5 s to finish); grants and spend are kept."""
        with self._lock:
            if self._server is not None and self._thread is not None:
                self._server.should_exit = True
                self._thread.join(timeout=15)
            self._server = self._thread = None

    def _ensure_certificates(self) -> GatewayCertificates:
        if self._certificates is None:
            self._certificates = ensure_certificates(self.state_dir, self.settings.host)
        return self._certificates

    @property
    def port(self) -> int:
        """The listening port; raises `GatewayNotStarted` before the first `start()`."""
        if self._port is None:
            raise GatewayNotStarted("the model gateway is not started: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """`https://<host>:<port>`: the base URL engines use (OpenAI clients append `/v1`)."""
        return f"https://{self.settings.host}:{self.port}"

    @property
    def local_url(self) -> str:
        """`https://<bind>:<port>`: the same listener for callers in the factory process,
        which do not resolve the gateway host name (the certificate names the bind address
        when it is 127.0.0.1 or ::1)."""
        bind = self.settings.bind
        return f"https://[{bind}]:{self.port}" if ":" in bind else f"https://{bind}:{self.port}"

    @property
    def egress_host(self) -> str:
        """`<host>:<port>`: the one entry of an engine phase's egress allow-list."""
        return f"{self.settings.host}:{self.port}"

    @property
    def resolve_entry(self) -> tuple[str, str]:
        """`(host, "<bind>:<port>")`: how the sandbox egress proxy reaches the listener (an
        IPv6 bind address in brackets, `[::1]:<port>`)."""
        bind = self.settings.bind
        return self.settings.host, f"[{bind}]:{self.port}" if ":" in bind else f"{bind}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """PEM file of the factory CA (created on first use) that engines must trust."""
        return self._ensure_certificates().ca_file

    def grant(
        self,
        run_id: str,
        agent_id: str,
        sponsor: str,
        engine: str,
        model: str,
        budget: Budget,
        *,
        extra_models: tuple[str, ...] = (),
        spent: Spend | None = None,
    ) -> str:
        """A fresh credential (`cfk-...`) for one run, carrying its budget; its wall time
        starts now. Its calls must name `model` (or one of `extra_models`, for an engine's
        side requests with a smaller model); `spent` is what the run used before (another
        worker's calls), counted against the budget. Raises ValueError for a run id unfit
        for a file name."""
        return self.grants.grant(
            run_id, agent_id, sponsor, engine, model, budget, extra_models=extra_models,
            spent=spent,
        )  # fmt: skip

    def revoke(self, credential: str) -> None:
        """Refuse `credential` from now on (a no-op for one already revoked or unknown)."""
        self.grants.revoke(credential)

    def spend(self, run_id: str) -> Spend:
        """What the run has used, as the gateway counted it (zero for an unknown run)."""
        return self.grants.spend(run_id)

    def cassette(self, run_id: str) -> Path:
        """The run's cassette file (present once it made an upstream call)."""
        return self.cassettes.path(run_id)

    def access(
        self, credential: str, model: str, protocol: str, *, local: bool = False
    ) -> ModelAccess:
        """What an engine needs to reach `model` through the gateway. `local`: the loopback
        URL, for engines in the factory process. Raises ValueError for an unknown protocol
        and `GatewayNotStarted` before `start()`."""
        names = sorted(p.value for p in MODEL_PROTOCOLS)
        if protocol not in names:
            raise ValueError(f"protocol {protocol!r} is not one of {', '.join(names)}")
        return ModelAccess(
            base_url=self.local_url if local else self.url,
            egress_host=self.egress_host,
            credential=credential,
            ca_file=self.ca_file,
            model=model,
            protocol=WireProtocol(protocol).value,
        )
