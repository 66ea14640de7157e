"""The wire protocols the gateway speaks, recognised by method and path.

| protocol             | caller request                                                    |
| -------------------- | ----------------------------------------------------------------- |
| `openai-chat`        | `POST /v1/chat/completions`; Azure style                          |
|                      | `POST /openai/deployments/{name}/chat/completions?api-version=..` |
| `openai-responses`   | `POST /v1/responses`                                              |
| `anthropic-messages` | `POST /v1/messages` (Claude Code adds `?beta=true`)               |
| `models`             | `GET /v1/models`, `GET /v1/models/{id}` (served from the grant)   |

Error bodies follow each provider's documented shape: OpenAI (and Azure OpenAI)
`{"error": {"message", "type", "param", "code"}}`; Anthropic
`{"type": "error", "error": {"type", "message"}}`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlencode


class WireProtocol(StrEnum):
    """A wire protocol; the values are `ModelAccess.protocol`'s names."""

    OPENAI_CHAT = "openai-chat"
    OPENAI_RESPONSES = "openai-responses"
    ANTHROPIC_MESSAGES = "anthropic-messages"
    MODELS = "models"

    @property
    def anthropic(self) -> bool:
        """Whether errors for this protocol take Anthropic's shape."""
        return self is WireProtocol.ANTHROPIC_MESSAGES


MODEL_PROTOCOLS = frozenset(
    {WireProtocol.OPENAI_CHAT, WireProtocol.OPENAI_RESPONSES, WireProtocol.ANTHROPIC_MESSAGES}
)

_CANONICAL = {
    ("POST", "/v1/chat/completions"): WireProtocol.OPENAI_CHAT,
    ("POST", "/v1/responses"): WireProtocol.OPENAI_RESPONSES,
    ("POST", "/v1/messages"): WireProtocol.ANTHROPIC_MESSAGES,
    ("GET", "/v1/models"): WireProtocol.MODELS,
}
_AZURE_CHAT = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")
_MODEL_ID = re.compile(r"^/v1/models/[^/]+$")


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """A recognised call: its protocol and the provider-neutral path it maps to."""

    protocol: WireProtocol
    path: str
    """The canonical path (`/v1/chat/completions`, ...); Azure-style paths map to it."""
    query: str = ""
    """The caller's query string to pass on (`beta=true`); Azure's `api-version` is dropped:
    the upstream setting decides it."""
    deployment: str = ""
    """The Azure deployment named in the caller's path; the model when the body names none."""


def match_endpoint(method: str, path: str, query: str = "") -> Endpoint | None:
    """The endpoint for `method path?query`, or None when the gateway does not serve it."""
    method = method.upper()
    protocol = _CANONICAL.get((method, path))
    if protocol is not None:
        return Endpoint(protocol=protocol, path=path, query=query)
    if method == "GET" and _MODEL_ID.match(path):
        return Endpoint(protocol=WireProtocol.MODELS, path=path, query=query)
    azure = _AZURE_CHAT.match(path)
    if method == "POST" and azure:
        kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "api-version"]
        return Endpoint(
            protocol=WireProtocol.OPENAI_CHAT,
            path="/v1/chat/completions",
            query=urlencode(kept),
            deployment=azure.group(1),
        )
    return None


def guess_anthropic(path: str, has_anthropic_version: bool) -> bool:
    """For an unrecognised call: whether to answer in Anthropic's error shape."""
    return has_anthropic_version or "/messages" in path


class BadModelRequest(ValueError):
    """A model call whose body the gateway cannot read (not JSON, no model, bad `stream`)."""


@dataclass(frozen=True, kw_only=True)
class RequestFacts:
    """What the gateway reads from a request body: the model, whether it asks to stream, the
    most output it asks for, and the parsed body (None for `models` calls)."""

    model: str
    stream: bool
    max_output: int | None = None
    """`max_tokens` (Anthropic, Chat), `max_completion_tokens` (Chat) or
    `max_output_tokens` (Responses), when the request names a positive one."""
    document: dict[str, Any] | None = None


MODEL_ID = re.compile(r"^[A-Za-z0-9._:-]{1,256}$")
"""A model id the gateway accepts in a path (`GET /v1/models/{id}`): no `/`, `?`, `#`, `%`."""


def valid_model_id(model: str) -> bool:
    """Whether `model` may name a model in a path: `MODEL_ID`, and not `.` or `..`."""
    return bool(MODEL_ID.match(model)) and model not in (".", "..")


_MAX_OUTPUT_FIELDS = {
    WireProtocol.OPENAI_CHAT: ("max_completion_tokens", "max_tokens"),
    WireProtocol.OPENAI_RESPONSES: ("max_output_tokens",),
    WireProtocol.ANTHROPIC_MESSAGES: ("max_tokens",),
}


def _max_output(protocol: WireProtocol, document: dict[str, Any]) -> int | None:
    for name in _MAX_OUTPUT_FIELDS.get(protocol, ()):
        value = document.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"the key {key!r} appears twice in one object")
        document[key] = value
    return document


def parse_json(body: bytes) -> Any:
    """`json.loads(body)`; raises `BadModelRequest` for anything it cannot read, including
    nesting deeper than the interpreter's recursion limit, integers too long to convert, and
    an object with a key twice (the body is forwarded byte for byte, and a provider whose
    parser keeps the first value would see what the gateway never screened)."""
    try:
        return json.loads(body, object_pairs_hook=_unique_keys)
    except RecursionError as error:
        raise BadModelRequest("request body is not JSON: nested too deeply") from error
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise BadModelRequest(f"request body is not JSON: {error}") from error


def read_request(endpoint: Endpoint, body: bytes) -> RequestFacts:
    """The model and stream flag of a call; raises `BadModelRequest` naming what is wrong.

    `models` calls carry no body: their model is the id in the path, if any."""
    if endpoint.protocol is WireProtocol.MODELS:
        return RequestFacts(model=endpoint.path.removeprefix("/v1/models").strip("/"), stream=False)
    document = parse_json(body)
    if not isinstance(document, dict):
        raise BadModelRequest("request body is not a JSON object")
    model = document.get("model", endpoint.deployment or None)
    if not isinstance(model, str) or not model:
        raise BadModelRequest("request body names no model (a non-empty string `model`)")
    stream = document.get("stream", False)
    if not isinstance(stream, bool):
        raise BadModelRequest(f"`stream` must be true or false, not {stream!r}")
    return RequestFacts(
        model=model,
        stream=stream,
        max_output=_max_output(endpoint.protocol, document),
        document=document,
    )


_OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "unknown_url"),
    408: ("invalid_request_error", "request_timeout"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("insufficient_quota", "insufficient_quota"),
    500: ("server_error", None),
    502: ("server_error", "upstream_unreachable"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "upstream_timeout"),
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str, *, anthropic: bool, code: str | None = None) -> bytes:
    """A provider-shaped JSON error body for an HTTP `status`.

    OpenAI: `{"error": {"message", "type", "param": null, "code"}}`; a 429 is
    `insufficient_quota` (the run's budget, which waiting does not refill). Anthropic:
    `{"type": "error", "error": {"type": "rate_limit_error"|..., "message"}}`. `code`
    overrides the OpenAI code."""
    if anthropic:
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        document: dict[str, object] = {
            "type": "error",
            "error": {"type": kind, "message": message},
        }
    else:
        kind, default_code = _OPENAI_TYPES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        document = {
            "error": {"message": message, "type": kind, "param": None, "code": code or default_code}
        }
    return json.dumps(document).encode()
