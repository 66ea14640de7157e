"""`ModelCall`: the gateway's record of one call, handed to the factory's `on_call`.

One record per upstream attempt, plus one for each call answered without reaching the
upstream (refused, malformed, unreachable), except calls without a valid credential: those
are counted, and recorded in aggregate (`count`), so that an anonymous flood cannot grow
the audit log by one event per request. The factory writes it as the audit event
`model-called`; it is the authoritative account of a run's model traffic (an engine's own
event stream is self-reported).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum

from codefactory.audit.events import ModelCalled


class Outcome(StrEnum):
    """How a call ended, from the gateway's point of view."""

    OK = "ok"
    """Forwarded; the upstream answered 2xx and a stream ended with its proper end event."""
    RETRIED = "retried"
    """The upstream answered 429/500/502/503/529; the gateway tried again (next record)."""
    UPSTREAM_ERROR = "upstream-error"
    """The upstream answered an error that reached the caller (retries exhausted or refused,
    a 4xx, an error event in a stream)."""
    TRUNCATED = "truncated"
    """A stream ended without its end event (or the caller left); the caller got what came."""
    UNAUTHENTICATED = "unauthenticated"
    """No, an unknown, a revoked or an expired credential: 401, not forwarded."""
    BUDGET_SPENT = "budget-spent"
    """The run's budget was used up: 429, not forwarded."""
    BAD_REQUEST = "bad-request"
    """A body the gateway cannot read (not JSON, no model, bad `stream`): 400, not forwarded."""
    UNKNOWN_ENDPOINT = "unknown-endpoint"
    """A method and path the gateway does not serve: 404, not forwarded."""
    NO_UPSTREAM = "no-upstream"
    """No upstream is configured: 503."""
    UNREACHABLE = "upstream-unreachable"
    """The upstream refused or dropped the connection: 502."""
    TIMEOUT = "upstream-timeout"
    """The upstream did not answer within `timeout_s`: 504."""
    NOT_RECORDED = "not-recorded"
    """The record of the exchange could not be written; the caller got a 500 instead."""
    MODEL_REFUSED = "model-refused"
    """The request named a model (or Azure deployment) the run's grant does not allow, or one
    without a price while the budget caps cost: 403 (404 for `GET /v1/models/{id}`)."""
    TOOL_REFUSED = "tool-refused"
    """The request asked the provider to act on its own (server-side tools, MCP servers,
    `web_search_options`, `store: true`, `background: true`): 400, not forwarded."""
    CONTENT_REFUSED = "content-refused"
    """The request still carried a detectable secret or personal datum (`content_scan.py`):
    400, not forwarded; the error names entity, detector and JSON path, never the value."""
    CONCURRENCY_LIMIT = "concurrency-limit"
    """The run already had `max_concurrent_calls` calls in flight: 429 with `retry-after`."""
    DISCONNECTED = "caller-disconnected"
    """The caller left before its request body arrived; nothing was forwarded."""
    GATEWAY_ERROR = "gateway-error"
    """The gateway failed on a call unexpectedly: 500 in the caller's provider's shape."""
    HALTED = "halted"
    """The factory is halted (`codefactory halt`): 403 naming the halt, not forwarded."""


@dataclass(frozen=True, kw_only=True)
class ModelCall:
    """One gateway call (or one upstream attempt of it). Empty strings for what is unknown:
    an unauthenticated call has no run unless its credential was revoked or expired."""

    run_id: str
    agent_id: str
    sponsor: str
    engine: str
    protocol: str
    """`openai-chat`, `openai-responses`, `anthropic-messages`, `models`, or `unknown`."""
    method: str
    path: str
    """The caller's path, without its query."""
    model: str
    """The model the request named (for Azure-style paths without one: the deployment)."""
    status: int
    """The HTTP status of this attempt: the upstream's, or the gateway's own refusal."""
    attempt: int
    """1 for the first upstream attempt, 2 for the first retry, ...; 0 when not forwarded."""
    streamed: bool
    """The response was a server-sent event stream."""
    request_sha256: str
    """Hex SHA-256 of the request body as received (and forwarded byte for byte)."""
    response_sha256: str
    """Hex SHA-256 of the response body this attempt produced (upstream's or the gateway's)."""
    input_tokens: int
    output_tokens: int
    cost_usd: float
    """By the run budget's price table; 0 for a model not in it."""
    usage_estimated: bool
    """The response carried no usage block: tokens are estimated from byte sizes."""
    duration_s: float
    """From receiving the request to the last byte of this attempt."""
    outcome: Outcome
    error: str = ""
    """What went wrong, for every outcome but `ok`."""
    upstream: str = ""
    """The upstream this attempt went to (`openai:https://host/v1`); never its key."""
    started_at: str = ""
    """When the gateway received the call: ISO 8601, UTC."""
    count: int = 1
    """How many calls this record stands for: more than 1 only for the aggregate record of
    calls without a valid credential (`unauthenticated`), which are not recorded one by one;
    its other fields are those of the first call it counts."""

    def audit_event(self) -> ModelCalled:
        """This call as its `model-called` audit event, written by the `gateway`."""
        data = asdict(self)
        run_id = data.pop("run_id")
        data["outcome"] = str(self.outcome)
        return ModelCalled(actor="gateway", run_id=run_id, **data)


CallSink = Callable[[ModelCall], None]
"""Receives each record in a worker thread (it may block, e.g. on a database write); an
exception it raises fails the call closed when the caller has not been answered yet."""
