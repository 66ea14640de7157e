"""Token usage and stream completeness, read from provider responses.

- `openai-chat`: body `usage.prompt_tokens`/`usage.completion_tokens`; in a stream the
  chunk carrying `usage` (sent when the request asks `stream_options.include_usage`); the
  stream ends with `data: [DONE]`.
- `openai-responses`: body `usage.input_tokens`/`usage.output_tokens`; in a stream the
  `response.completed` event's `response.usage` (`response.incomplete` and
  `response.failed` are proper ends too).
- `anthropic-messages`: body `usage.input_tokens`/`usage.output_tokens`; in a stream
  `message_start.message.usage.input_tokens` plus `message_delta.usage.output_tokens`; the
  stream ends with `message_stop`.

Anthropic's cache reads and writes (`cache_read_input_tokens`,
`cache_creation_input_tokens`) count as input tokens: the budget errs on the side of spend.
Server-sent events follow the WHATWG HTML standard, §9.2 (event stream interpretation).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from codefactory.engines.gateway.protocols import WireProtocol

BYTES_PER_TOKEN = 3
"""The estimate for a response without usage: one token per 3 bytes, more than real
tokenisers give for English text or code (about 4), so estimates over-count."""


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Tokens of one call."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, kw_only=True)
class StreamFacts:
    """What an SSE response carried: its usage if it told, whether it ended properly, and the
    message of an error event if one came."""

    usage: Usage | None
    complete: bool
    error: str = ""


def estimate(request_body: bytes, response_body: bytes) -> Usage:
    """A conservative usage estimate from byte sizes (`BYTES_PER_TOKEN`)."""
    return Usage(
        input_tokens=math.ceil(len(request_body) / BYTES_PER_TOKEN),
        output_tokens=math.ceil(len(response_body) / BYTES_PER_TOKEN),
    )


MAX_COUNT = 2**53 - 1
"""The largest token count kept as reported: every integer of an audit event stays exact as
an IEEE double (RFC 8785 §3.2.2.3), so any verifier recomputes the same leaf. A larger count
is kept as this one, which spends any budget."""


def _count(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return min(value, MAX_COUNT)
    return 0


def _anthropic_input(usage: Mapping[str, Any]) -> int:
    keys = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return min(sum(_count(usage.get(key)) for key in keys), MAX_COUNT)


def _usage_of(protocol: WireProtocol, usage: object) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    if protocol is WireProtocol.OPENAI_CHAT:
        if "prompt_tokens" not in usage and "completion_tokens" not in usage:
            return None
        return Usage(
            input_tokens=_count(usage.get("prompt_tokens")),
            output_tokens=_count(usage.get("completion_tokens")),
        )
    if "input_tokens" not in usage and "output_tokens" not in usage:
        return None
    if protocol is WireProtocol.ANTHROPIC_MESSAGES:
        return Usage(
            input_tokens=_anthropic_input(usage), output_tokens=_count(usage.get("output_tokens"))
        )
    return Usage(
        input_tokens=_count(usage.get("input_tokens")),
        output_tokens=_count(usage.get("output_tokens")),
    )


def usage_from_body(protocol: WireProtocol, body: bytes) -> Usage | None:
    """The usage block of a non-streamed JSON response; None when it has none."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, too deep, an integer too long
        return None
    return _usage_of(protocol, document.get("usage")) if isinstance(document, dict) else None


def sse_events(body: bytes) -> Iterator[tuple[str, str]]:
    """`(event type, data)` for each event of an SSE stream; a last event without its blank
    line is still dispatched, since a truncated stream is what this reads too."""
    text = body.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    for block in text.split("\n\n"):
        event, data = "message", []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        if data:
            yield event, "\n".join(data)


def _json(data: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return document if isinstance(document, dict) else {}


def read_stream(protocol: WireProtocol, body: bytes) -> StreamFacts:
    """Usage, proper end and error of an SSE response body in `protocol`."""
    if protocol is WireProtocol.OPENAI_CHAT:
        return _chat_stream(body)
    if protocol is WireProtocol.OPENAI_RESPONSES:
        return _responses_stream(body)
    if protocol is WireProtocol.ANTHROPIC_MESSAGES:
        return _anthropic_stream(body)
    return StreamFacts(usage=None, complete=True)


def _chat_stream(body: bytes) -> StreamFacts:
    usage, complete, error = None, False, ""
    for _, data in sse_events(body):
        if data.strip() == "[DONE]":
            complete = True
            continue
        chunk = _json(data)
        usage = _usage_of(WireProtocol.OPENAI_CHAT, chunk.get("usage")) or usage
        if isinstance(chunk.get("error"), dict):
            error = str(chunk["error"].get("message", chunk["error"]))
    return StreamFacts(usage=usage, complete=complete, error=error)


_RESPONSES_END = {"response.completed", "response.incomplete", "response.failed"}


def _responses_stream(body: bytes) -> StreamFacts:
    usage, complete, error = None, False, ""
    for event, data in sse_events(body):
        document = _json(data)
        kind = document.get("type", event)
        if kind in _RESPONSES_END:
            complete = True
            response = document.get("response")
            if isinstance(response, dict):
                usage = _usage_of(WireProtocol.OPENAI_RESPONSES, response.get("usage")) or usage
        if kind == "error":
            error = str(document.get("message", data))
    return StreamFacts(usage=usage, complete=complete, error=error)


def _anthropic_stream(body: bytes) -> StreamFacts:
    input_tokens = output_tokens = None
    complete, error = False, ""
    for event, data in sse_events(body):
        document = _json(data)
        kind = document.get("type", event)
        if kind == "message_start" and isinstance(document.get("message"), dict):
            usage = document["message"].get("usage")
            if isinstance(usage, dict):
                input_tokens = _anthropic_input(usage)
                output_tokens = _count(usage.get("output_tokens"))
        elif kind == "message_delta" and isinstance(document.get("usage"), dict):
            usage = document["usage"]
            # The delta's counts are cumulative; newer API versions repeat input tokens there.
            output_tokens = max(output_tokens or 0, _count(usage.get("output_tokens")))
            input_tokens = max(input_tokens or 0, _anthropic_input(usage))
        elif kind == "message_stop":
            complete = True
        elif kind == "error":
            inner = document.get("error")
            error = str(inner.get("message", inner) if isinstance(inner, dict) else data)
    usage_seen = input_tokens is not None or output_tokens is not None
    return StreamFacts(
        usage=Usage(input_tokens=input_tokens or 0, output_tokens=output_tokens or 0)
        if usage_seen
        else None,
        complete=complete,
        error=error,
    )
