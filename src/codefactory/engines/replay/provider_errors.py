"""Errors in the caller's provider shape.

OpenAI (both protocols): `{"error": {"message", "type", "param", "code"}}`.
Anthropic: `{"type": "error", "error": {"type", "message"}}`.
"""

from __future__ import annotations

import json

from starlette.responses import Response

from codefactory.engines.replay.turn import ErrorAnswer, ErrorKind
from codefactory.engines.replay.wire import Protocol

# kind → (HTTP status, OpenAI type, OpenAI code, Anthropic type)
_SHAPES: dict[ErrorKind, tuple[int, str, str | None, str]] = {
    ErrorKind.RATE_LIMIT: (429, "requests", "rate_limit_exceeded", "rate_limit_error"),
    ErrorKind.SERVER_ERROR: (500, "server_error", None, "api_error"),
    ErrorKind.OVERLOADED: (529, "server_error", "overloaded", "overloaded_error"),
    ErrorKind.CONTEXT_LENGTH: (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "invalid_request_error",
    ),
    ErrorKind.MISMATCH: (409, "invalid_request_error", "replay_mismatch", "invalid_request_error"),
    ErrorKind.INVALID_REQUEST: (400, "invalid_request_error", None, "invalid_request_error"),
}


def error_response(protocol: Protocol, answer: ErrorAnswer) -> Response:
    """The JSON error response for `answer`, with `retry-after` (seconds) when it has one."""
    status, openai_type, code, anthropic_type = _SHAPES[answer.kind]
    message = _message(protocol, answer)
    if protocol is Protocol.MESSAGES:
        body: dict[str, object] = {
            "type": "error",
            "error": {"type": anthropic_type, "message": message},
        }
    else:
        param = _param(protocol) if answer.kind is ErrorKind.CONTEXT_LENGTH else None
        body = {"error": {"message": message, "type": openai_type, "param": param, "code": code}}
    headers: dict[str, str] = {}
    if answer.retry_after is not None:
        # RFC 9110 §10.2.3: delay-seconds is a whole number.
        headers["retry-after"] = str(max(0, round(answer.retry_after)))
        # Both official SDKs prefer this exact form when present.
        headers["retry-after-ms"] = str(round(answer.retry_after * 1000))
    return Response(
        json.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def _message(protocol: Protocol, answer: ErrorAnswer) -> str:
    if answer.kind is not ErrorKind.CONTEXT_LENGTH:
        return answer.message
    # The wording each provider uses, which clients and engines match on.
    if protocol is Protocol.MESSAGES:
        return f"prompt is too long: 200001 tokens > 200000 maximum ({answer.message})"
    return (
        "This model's maximum context length is 128000 tokens. However, your messages "
        f"resulted in 128001 tokens. Please reduce the length of the messages. ({answer.message})"
    )


def _param(protocol: Protocol) -> str:
    return "input" if protocol is Protocol.RESPONSES else "messages"
