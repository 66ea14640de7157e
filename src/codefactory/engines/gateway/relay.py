"""The gateway's handling of one call: authenticate (from the headers, before any byte of
the body is read), check, forward with retries, account, record. Answers in the caller's
provider's shape whatever happens, an unexpected failure included (500, `gateway-error`)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable

import anyio
import anyio.to_thread
import httpx
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp

from codefactory.engines.gateway.calls import CallContext
from codefactory.engines.gateway.cassette import CassetteWriter, Interaction
from codefactory.engines.gateway.content_scan import ContentScan
from codefactory.engines.gateway.grants import Grant, GrantTable
from codefactory.engines.gateway.headers import (
    caller_credentials,
    outbound,
    retry_delay,
    returned,
)
from codefactory.engines.gateway.protocols import (
    MODEL_PROTOCOLS,
    BadModelRequest,
    WireProtocol,
    error_body,
    guess_anthropic,
    match_endpoint,
    read_request,
    valid_model_id,
)
from codefactory.engines.gateway.records import CallSink, ModelCall, Outcome
from codefactory.engines.gateway.screening import model_refusal, provider_work_refusal
from codefactory.engines.gateway.streaming import TeeResponse
from codefactory.engines.gateway.tally import RefusalTally
from codefactory.engines.gateway.tls import ssl_context_from
from codefactory.engines.gateway.upstream import Upstream
from codefactory.engines.gateway.usage import (
    BYTES_PER_TOKEN,
    Usage,
    estimate,
    read_stream,
    usage_from_body,
)
from codefactory.engines.settings import GatewaySettings

logger = logging.getLogger(__name__)

RETRYABLE = frozenset({429, 500, 502, 503, 529})
MAX_REQUEST_BYTES = GatewaySettings().max_request_bytes
"""The default request body cap (`GatewaySettings.max_request_bytes` decides)."""
NO_UPSTREAM = "no model upstream is configured: set CODEFACTORY_GATEWAY__UPSTREAM"
BUSY_RETRY_AFTER_S = 1


def _json_response(
    status: int, body: bytes, *, final: bool, headers: dict[str, str] | None = None
) -> Response:
    # `x-should-retry: false` stops the OpenAI and Anthropic SDKs retrying what cannot change.
    extra = {"x-should-retry": "false"} if final else {}
    merged = {**extra, **(headers or {})}
    return Response(body, status, headers=merged, media_type="application/json")


def _upstream_response(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> Response:
    response = Response(body, status)
    response.raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return response


def _models_document(grant: Grant, model_id: str, *, anthropic: bool) -> dict[str, object]:
    """The grant's models in OpenAI's shape, or Anthropic's; one model when `model_id`."""

    def one(name: str) -> dict[str, object]:
        if anthropic:
            return {
                "type": "model",
                "id": name,
                "display_name": name,
                "created_at": "1970-01-01T00:00:00Z",
            }
        return {"id": name, "object": "model", "created": 0, "owned_by": "codefactory"}

    if model_id:
        return one(model_id)
    data = [one(name) for name in grant.models]
    if anthropic:
        return {
            "data": data,
            "has_more": False,
            "first_id": grant.models[0],
            "last_id": grant.models[-1],
        }
    return {"object": "list", "data": data}


class _TooLarge(Exception):
    pass


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
        content_scan: ContentScan | None = None,
        halted: Callable[[], str | None] | None = None,
    ) -> None:
        """`halted` describes the organisation-wide halt in force, or None (policy/halt.py):
        while there is one, every authenticated call is refused (403, `halted`)."""
        self.halted = halted
        self.settings = settings
        self.content_scan = content_scan or ContentScan()
        self.upstream = upstream
        self.grants = grants
        self.cassettes = cassettes
        self.on_call = on_call
        self.replay_app = replay_app
        self.tally = RefusalTally(settings.refusal_flush_s)
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
        """Close the upstream client and write the counted refusals still pending."""
        await self._write_refusals(self.tally.drain())
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def flush_periodically(self) -> None:
        """Write aggregate records of refused calls as their intervals end (runs until
        cancelled, in the app's lifespan)."""
        period = max(0.05, min(self.settings.refusal_flush_s, 5.0))
        while True:
            await anyio.sleep(period)
            await self._write_refusals(self.tally.due())

    async def _write_refusals(self, calls: list[ModelCall]) -> None:
        for call in calls:
            try:
                await self._deliver("", call, None)
            except Exception:  # nobody is waiting for this answer; the log must say so
                logger.exception("model gateway: could not record refused calls")

    async def handle(self, request: Request) -> Response | TeeResponse:
        """Answer one call (see `ModelGateway` for the order of checks)."""
        method, path = request.method, request.url.path
        endpoint = match_endpoint(method, path, request.url.query)
        anthropic = (
            endpoint.protocol.anthropic
            if endpoint
            else guess_anthropic(path, "anthropic-version" in request.headers)
        )
        ctx = CallContext(method=method, path=path, body=b"", anthropic=anthropic)
        ctx.endpoint = endpoint
        response: Response | TeeResponse | None = None
        try:
            response = await self._handle(request, ctx)
            return response
        except Exception as error:  # every call is answered in shape, and recorded
            logger.exception("model gateway: a call failed")
            message = f"the model gateway failed on this call: {type(error).__name__}"
            response = await self.refuse(ctx, 500, Outcome.GATEWAY_ERROR, message)
            return response
        finally:
            # A stream settles when it ends (`_stream`); every other answer is final here.
            if ctx.reservation is not None and not isinstance(response, TeeResponse):
                self.grants.release(ctx.reservation)

    async def _handle(self, request: Request, ctx: CallContext) -> Response | TeeResponse:
        endpoint = ctx.endpoint
        auth = self.grants.authenticate(caller_credentials(request.headers))
        ctx.grant = auth.grant
        if auth.refusal or ctx.grant is None:
            return await self.refuse(ctx, 401, Outcome.UNAUTHENTICATED, auth.refusal)
        halt = await anyio.to_thread.run_sync(self.halted) if self.halted is not None else None
        if halt is not None:
            return await self.refuse(ctx, 403, Outcome.HALTED, halt)
        grant = ctx.grant
        if endpoint is None:
            message = f"the model gateway serves no {ctx.method} {ctx.path}"
            return await self.refuse(ctx, 404, Outcome.UNKNOWN_ENDPOINT, message)
        if endpoint.protocol is WireProtocol.MODELS:
            return await self._models(ctx, grant, "anthropic-version" in request.headers)
        refused = await self._read_body(ctx, request)
        if refused is not None:
            return refused
        try:
            facts = read_request(endpoint, ctx.body)
        except BadModelRequest as error:
            return await self.refuse(ctx, 400, Outcome.BAD_REQUEST, str(error))
        ctx.model = facts.model
        refusal = model_refusal(grant, endpoint, facts.model)
        if refusal:
            return await self.refuse(ctx, 403, Outcome.MODEL_REFUSED, refusal)
        refusal = provider_work_refusal(endpoint.protocol, facts.document or {})
        if refusal:
            return await self.refuse(ctx, 400, Outcome.TOOL_REFUSED, refusal)
        refusal = await anyio.to_thread.run_sync(
            self.content_scan.refusal, endpoint.protocol, facts.document or {}
        )
        if refusal:
            return await self.refuse(ctx, 400, Outcome.CONTENT_REFUSED, refusal)
        if self.upstream is None:
            return await self.refuse(ctx, 503, Outcome.NO_UPSTREAM, NO_UPSTREAM)
        admission = self.grants.admit(
            grant,
            facts.model,
            input_tokens=math.ceil(len(ctx.body) / BYTES_PER_TOKEN),
            output_tokens=facts.max_output,
            max_concurrent=self.settings.max_concurrent_calls,
        )
        if admission.reservation is None:
            if admission.busy:
                message = f"run busy: {admission.refusal}; retry shortly"
                return await self.refuse(
                    ctx,
                    429,
                    Outcome.CONCURRENCY_LIMIT,
                    message,
                    final=False,
                    headers={"retry-after": str(BUSY_RETRY_AFTER_S)},
                )
            message = f"run budget spent: {admission.refusal}"
            return await self.refuse(ctx, 429, Outcome.BUDGET_SPENT, message)
        ctx.reservation = admission.reservation
        ctx.upstream = self.upstream.label
        return await self.forward(ctx, self.upstream, request.headers.items())

    async def _models(self, ctx: CallContext, grant: Grant, anthropic: bool) -> Response:
        """`GET /v1/models[/{id}]`, served from the grant: only the run's models exist."""
        assert ctx.endpoint is not None
        ctx.anthropic = anthropic
        model_id = ctx.endpoint.path.removeprefix("/v1/models").strip("/")
        ctx.model = model_id
        if model_id and not valid_model_id(model_id):
            message = f"{model_id!r} is not a model id"
            return await self.refuse(ctx, 400, Outcome.BAD_REQUEST, message)
        if model_id and not grant.allows(model_id):
            message = f"model {model_id!r} is not available to this run"
            return await self.refuse(ctx, 404, Outcome.MODEL_REFUSED, message)
        body = json.dumps(_models_document(grant, model_id, anthropic=anthropic)).encode()
        call = ctx.record(status=200, outcome=Outcome.OK, response=body)
        return await self._answer(ctx, _json_response(200, body, final=False), call, None)

    async def _read_body(self, ctx: CallContext, request: Request) -> Response | None:
        """Read the body into `ctx.body` within the size cap and the deadline; the refusal
        when it cannot be (too large by its `content-length` before any byte is read)."""
        limit = self.settings.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                message = f"content-length {declared[:40]!r} is not a number"
                return await self.refuse(ctx, 400, Outcome.BAD_REQUEST, message)
            if size > limit:
                message = f"request body larger than {limit} bytes"
                return await self.refuse(ctx, 413, Outcome.BAD_REQUEST, message)
        buffer = bytearray()
        try:
            with anyio.fail_after(self.settings.body_timeout_s):
                async for chunk in request.stream():
                    if len(buffer) + len(chunk) > limit:
                        raise _TooLarge
                    buffer += chunk
        except _TooLarge:
            message = f"request body larger than {limit} bytes"
            return await self.refuse(ctx, 413, Outcome.BAD_REQUEST, message)
        except TimeoutError:
            message = f"request body not received within {self.settings.body_timeout_s:g}s"
            return await self.refuse(ctx, 408, Outcome.BAD_REQUEST, message)
        except ClientDisconnect:
            message = f"caller left after {len(buffer)} bytes of its request body"
            return await self.refuse(ctx, 400, Outcome.DISCONNECTED, message)
        ctx.body = bytes(buffer)
        return None

    async def refuse(
        self,
        ctx: CallContext,
        status: int,
        outcome: Outcome,
        message: str,
        *,
        attempt: int = 0,
        final: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """The gateway's own provider-shaped error answer, recorded (calls without a valid
        credential in aggregate, `tally.py`)."""
        body = error_body(status, message, anthropic=ctx.anthropic)
        final = status not in (502, 504) if final is None else final
        response = _json_response(status, body, final=final, headers=headers)
        call = ctx.record(
            status=status, outcome=outcome, response=body, attempt=attempt, error=message
        )
        if outcome is Outcome.UNAUTHENTICATED:
            await self._write_refusals(self.tally.add(call))
            return response
        return await self._answer(ctx, response, call, None)

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

    async def _read_capped(self, response: httpx.Response) -> tuple[bytes, bool]:
        """The upstream's body, at most `max_response_bytes` of it, and whether it was cut."""
        limit, buffer, cut = self.settings.max_response_bytes, bytearray(), False
        try:
            async for chunk in response.aiter_bytes():
                if len(buffer) + len(chunk) > limit:
                    buffer += chunk[: limit - len(buffer)]
                    cut = True
                    break
                buffer += chunk
        finally:
            await response.aclose()
        return bytes(buffer), cut

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
        headers = outbound(
            caller_headers,
            key,
            anthropic=ctx.endpoint.protocol.anthropic,
            beta_families=self.settings.anthropic_betas,
        )
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
                body, _ = await self._read_capped(response)
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
            body, cut = await self._read_capped(response)
            if cut:
                return await self._cut_answer(ctx, exchange, body, attempt)
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
        assert ctx.grant is not None and ctx.reservation is not None
        measure = self.grants.recount(ctx.grant, ctx.reservation)
        if measure is not None:
            return None, f"upstream answered {status}; no retry: run budget spent: {measure}"
        return delay, ""

    def _usage(
        self, ctx: CallContext, status: int, usage: Usage | None, response: bytes
    ) -> tuple[Usage | None, bool, float]:
        """Usage (estimated when the response told none), whether estimated, and its cost;
        the call's reservation is settled with it (released for an error)."""
        assert ctx.endpoint is not None and ctx.grant is not None
        if status >= 400 or ctx.endpoint.protocol not in MODEL_PROTOCOLS:
            if ctx.reservation is not None:
                self.grants.release(ctx.reservation)
            return None, False, 0.0
        estimated = usage is None
        counted = estimate(ctx.body, response) if usage is None else usage
        if ctx.reservation is None:
            cost = self.grants.account(ctx.grant, ctx.model, counted, estimated=estimated)
        else:
            cost = self.grants.settle(
                ctx.grant, ctx.reservation, ctx.model, counted, estimated=estimated
            )
        return counted, estimated, cost

    async def _cut_answer(
        self, ctx: CallContext, exchange: _Exchange, body: bytes, attempt: int
    ) -> Response:
        """An upstream answer longer than `max_response_bytes`: 502 to the caller, its spend
        estimated from what arrived (the provider bills it)."""
        limit = self.settings.max_response_bytes
        message = f"upstream response longer than {limit} bytes: not passed on"
        usage, estimated, cost = self._usage(ctx, 200, None, body)
        answer = error_body(502, message, anthropic=ctx.anthropic)
        call = ctx.record(
            status=502,
            outcome=Outcome.UPSTREAM_ERROR,
            response=body,
            attempt=attempt,
            usage=usage,
            estimated=estimated,
            cost_usd=cost,
            error=message,
        )
        response = _json_response(502, answer, final=True)
        return await self._answer(ctx, response, call, exchange.interaction(ctx, body))

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
        return TeeResponse(
            exchange.response, headers, done, max_bytes=self.settings.max_response_bytes
        )


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
