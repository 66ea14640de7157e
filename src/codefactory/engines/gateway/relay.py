"""The gateway's handling of one call: authenticate, check, forward with retries, account,
record. Answers in the caller's provider's shape whatever happens."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import anyio
import anyio.to_thread
import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from codefactory.engines.gateway.calls import CallContext
from codefactory.engines.gateway.cassette import CassetteWriter, Interaction
from codefactory.engines.gateway.grants import GrantTable
from codefactory.engines.gateway.headers import (
    caller_credentials,
    outbound,
    retry_delay,
    returned,
)
from codefactory.engines.gateway.protocols import (
    MODEL_PROTOCOLS,
    BadModelRequest,
    error_body,
    guess_anthropic,
    match_endpoint,
    read_request,
)
from codefactory.engines.gateway.records import CallSink, ModelCall, Outcome
from codefactory.engines.gateway.streaming import TeeResponse
from codefactory.engines.gateway.tls import ssl_context_from
from codefactory.engines.gateway.upstream import Upstream
from codefactory.engines.gateway.usage import Usage, estimate, read_stream, usage_from_body
from codefactory.engines.settings import GatewaySettings

logger = logging.getLogger(__name__)

RETRYABLE = frozenset({429, 500, 502, 503, 529})
MAX_REQUEST_BYTES = 32 * 1024 * 1024
NO_UPSTREAM = "no model upstream is configured: set CODEFACTORY_GATEWAY__UPSTREAM"


def _json_response(status: int, body: bytes, *, final: bool) -> Response:
    # `x-should-retry: false` stops the OpenAI and Anthropic SDKs retrying what cannot change.
    headers = {"x-should-retry": "false"} if final else {}
    return Response(body, status, headers=headers, media_type="application/json")


def _upstream_response(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> Response:
    response = Response(body, status)
    response.raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return response


class Relay:
    """Handles calls for the gateway app; one per gateway, shared by every run."""

    def __init__(
        self,
        *,
        settings: GatewaySettings,
        upstream: Upstream | None,
        grants: GrantTable,
        cassettes: CassetteWriter,
        on_call: CallSink,
        replay_app: ASGIApp | None = None,
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.grants = grants
        self.cassettes = cassettes
        self.on_call = on_call
        self.replay_app = replay_app
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        """Create the upstream client on the serving loop."""
        timeout = httpx.Timeout(self.settings.timeout_s)
        if self.replay_app is not None:
            transport = httpx.ASGITransport(app=self.replay_app)
            self._client = httpx.AsyncClient(transport=transport, timeout=timeout)
        else:
            verify = ssl_context_from(self.settings.upstream_ca)
            self._client = httpx.AsyncClient(verify=verify, timeout=timeout)

    async def close(self) -> None:
        """Close the upstream client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def handle(self, request: Request) -> Response | TeeResponse:
        """Answer one call (see `ModelGateway` for the order of checks)."""
        method, path = request.method, request.url.path
        endpoint = match_endpoint(method, path, request.url.query)
        anthropic = (
            endpoint.protocol.anthropic
            if endpoint
            else guess_anthropic(path, "anthropic-version" in request.headers)
        )
        body = await self._body(request)
        ctx = CallContext(method=method, path=path, body=body or b"", anthropic=anthropic)
        ctx.endpoint = endpoint
        auth = self.grants.authenticate(caller_credentials(request.headers))
        ctx.grant = auth.grant
        if auth.refusal or ctx.grant is None:
            return await self.refuse(ctx, 401, Outcome.UNAUTHENTICATED, auth.refusal)
        if body is None:
            message = f"request body larger than {MAX_REQUEST_BYTES} bytes"
            return await self.refuse(ctx, 413, Outcome.BAD_REQUEST, message)
        if endpoint is None:
            message = f"the model gateway serves no {method} {path}"
            return await self.refuse(ctx, 404, Outcome.UNKNOWN_ENDPOINT, message)
        try:
            ctx.model = read_request(endpoint, body).model
        except BadModelRequest as error:
            return await self.refuse(ctx, 400, Outcome.BAD_REQUEST, str(error))
        if self.upstream is None:
            return await self.refuse(ctx, 503, Outcome.NO_UPSTREAM, NO_UPSTREAM)
        counted = endpoint.protocol in MODEL_PROTOCOLS
        measure = self.grants.reserve(ctx.grant, count_request=counted)
        if measure is not None:
            message = f"run budget spent: {measure}"
            return await self.refuse(ctx, 429, Outcome.BUDGET_SPENT, message)
        ctx.upstream = self.upstream.label
        return await self.forward(ctx, self.upstream, request.headers.items())

    async def _body(self, request: Request) -> bytes | None:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_REQUEST_BYTES:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def refuse(
        self, ctx: CallContext, status: int, outcome: Outcome, message: str, *, attempt: int = 0
    ) -> Response:
        """The gateway's own provider-shaped error answer, recorded."""
        body = error_body(status, message, anthropic=ctx.anthropic)
        final = status not in (502, 504)
        call = ctx.record(
            status=status, outcome=outcome, response=body, attempt=attempt, error=message
        )
        return await self._answer(ctx, _json_response(status, body, final=final), call, None)

    async def _answer(
        self, ctx: CallContext, response: Response, call: ModelCall, exchange: Interaction | None
    ) -> Response:
        try:
            await self._deliver(ctx.run_id, call, exchange)
        except Exception as error:  # fail closed: an unrecorded call gets no answer
            logger.exception("model gateway: could not record a call")
            message = f"the model gateway could not record the call: {error}"
            body = error_body(500, message, anthropic=ctx.anthropic)
            return _json_response(500, body, final=True)
        return response

    async def _deliver(self, run_id: str, call: ModelCall, exchange: Interaction | None) -> None:
        def write() -> None:
            if exchange is not None and run_id:
                self.cassettes.append(run_id, exchange)
            self.on_call(call)

        await anyio.to_thread.run_sync(write)

    async def forward(
        self, ctx: CallContext, upstream: Upstream, caller_headers: Iterable[tuple[str, str]]
    ) -> Response | TeeResponse:
        """Send the call upstream, retrying 429/500/502/503/529 within settings and budget."""
        assert ctx.endpoint is not None and ctx.grant is not None and self._client is not None
        url = upstream.url_for(ctx.endpoint)
        if url is None:
            message = f"the {upstream.kind} upstream serves no {ctx.method} {ctx.path}"
            return await self.refuse(ctx, 404, Outcome.UNKNOWN_ENDPOINT, message)
        key = upstream.key_headers(self.settings.upstream_key.get_secret_value())
        headers = outbound(caller_headers, key, anthropic=ctx.endpoint.protocol.anthropic)
        attempt = 0
        while True:
            attempt += 1
            request = self._client.build_request(ctx.method, url, headers=headers, content=ctx.body)
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TimeoutException as error:
                message = f"upstream timed out after {self.settings.timeout_s:g}s: {error!r}"
                return await self.refuse(ctx, 504, Outcome.TIMEOUT, message, attempt=attempt)
            except httpx.HTTPError as error:
                message = f"upstream unreachable: {type(error).__name__}: {error}"
                return await self.refuse(ctx, 502, Outcome.UNREACHABLE, message, attempt=attempt)
            exchange = _Exchange(url=url, headers=headers, response=response)
            if response.status_code in RETRYABLE:
                body = await response.aread()
                await response.aclose()
                delay, refusal = self._retry(ctx, response, attempt)
                if delay is None:
                    return await self._read_answer(ctx, exchange, body, attempt, refusal)
                call = ctx.record(
                    status=response.status_code,
                    outcome=Outcome.RETRIED,
                    response=body,
                    attempt=attempt,
                    error=f"upstream answered {response.status_code}; retry in {delay:g}s",
                )
                await self._deliver(ctx.run_id, call, exchange.interaction(ctx, body))
                await anyio.sleep(delay)
                continue
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                return self._stream(ctx, exchange, attempt)
            body = await response.aread()
            await response.aclose()
            return await self._read_answer(ctx, exchange, body, attempt, "")

    def _retry(
        self, ctx: CallContext, response: httpx.Response, attempt: int
    ) -> tuple[float | None, str]:
        status = response.status_code
        if attempt > self.settings.retries:
            return None, f"upstream answered {status}; gave up after {attempt} attempt(s)"
        cap = self.settings.max_retry_after_s
        delay = retry_delay(response.headers, attempt, cap)
        if delay is None:
            return None, f"upstream answered {status} asking to wait longer than {cap:g}s"
        assert ctx.grant is not None
        measure = self.grants.reserve(ctx.grant, count_request=True)
        if measure is not None:
            return None, f"upstream answered {status}; no retry: run budget spent: {measure}"
        return delay, ""

    def _usage(
        self, ctx: CallContext, status: int, usage: Usage | None, response: bytes
    ) -> tuple[Usage | None, bool, float]:
        """Usage (estimated when the response told none), whether estimated, and its cost."""
        assert ctx.endpoint is not None and ctx.grant is not None
        if status >= 400 or ctx.endpoint.protocol not in MODEL_PROTOCOLS:
            return None, False, 0.0
        estimated = usage is None
        counted = estimate(ctx.body, response) if usage is None else usage
        cost = self.grants.account(ctx.grant, ctx.model, counted, estimated=estimated)
        return counted, estimated, cost

    async def _read_answer(
        self, ctx: CallContext, exchange: _Exchange, body: bytes, attempt: int, error: str
    ) -> Response:
        assert ctx.endpoint is not None
        status = exchange.response.status_code
        usage, estimated, cost = self._usage(
            ctx, status, usage_from_body(ctx.endpoint.protocol, body), body
        )
        if status >= 400 and not error:
            error = f"upstream answered {status}: {body[:300].decode('utf-8', 'replace')}"
        call = ctx.record(
            status=status,
            outcome=Outcome.OK if status < 400 else Outcome.UPSTREAM_ERROR,
            response=body,
            attempt=attempt,
            usage=usage,
            estimated=estimated,
            cost_usd=cost,
            error=error,
        )
        answer = _upstream_response(status, returned(exchange.response.headers.multi_items()), body)
        return await self._answer(ctx, answer, call, exchange.interaction(ctx, body))

    def _stream(self, ctx: CallContext, exchange: _Exchange, attempt: int) -> TeeResponse:
        assert ctx.endpoint is not None
        protocol = ctx.endpoint.protocol

        async def done(body: bytes, failure: str) -> None:
            status = exchange.response.status_code
            facts = read_stream(protocol, body)
            usage, estimated, cost = self._usage(ctx, status, facts.usage, body)
            if status >= 400 or facts.error:
                outcome, error = (
                    Outcome.UPSTREAM_ERROR,
                    facts.error or f"upstream answered {status}",
                )
            elif failure or not facts.complete:
                outcome = Outcome.TRUNCATED
                error = failure or f"stream ended without its {protocol.value} end event"
            else:
                outcome, error = Outcome.OK, ""
            call = ctx.record(
                status=status,
                outcome=outcome,
                response=body,
                attempt=attempt,
                streamed=True,
                usage=usage,
                estimated=estimated,
                cost_usd=cost,
                error=error,
            )
            try:
                await self._deliver(ctx.run_id, call, exchange.interaction(ctx, body))
            except Exception:  # the caller has its answer already; the log must say so
                logger.exception("model gateway: could not record a streamed call")

        headers = returned(exchange.response.headers.multi_items())
        return TeeResponse(exchange.response, headers, done)


class _Exchange:
    """One upstream attempt: where it went, with which headers, and what came back."""

    def __init__(self, *, url: str, headers: dict[str, str], response: httpx.Response) -> None:
        self.url = url
        self.headers = headers
        self.response = response

    def interaction(self, ctx: CallContext, body: bytes) -> Interaction:
        """The cassette entry of this attempt (credentials are dropped by the writer)."""
        recorded = [
            (k, v)
            for k, v in self.response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length")
            or self.response.headers.get("content-encoding", "identity") == "identity"
        ]
        return Interaction(
            method=ctx.method,
            uri=self.url,
            request_headers=self.headers,
            request_body=ctx.body,
            status=self.response.status_code,
            reason=self.response.reason_phrase,
            response_headers=recorded,
            response_body=body,
        )
