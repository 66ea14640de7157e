"""Wire protocols: endpoints by path, request facts, error shapes, usage and stream ends."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.engines.gateway.protocols import (
    BadModelRequest,
    Endpoint,
    WireProtocol,
    error_body,
    match_endpoint,
    read_request,
)
from codefactory.engines.gateway.usage import (
    Usage,
    estimate,
    read_stream,
    sse_events,
    usage_from_body,
)

CHAT, RESPONSES, MESSAGES = (
    WireProtocol.OPENAI_CHAT,
    WireProtocol.OPENAI_RESPONSES,
    WireProtocol.ANTHROPIC_MESSAGES,
)


def sse(*events: tuple[str | None, object]) -> bytes:
    return "".join(
        (f"event: {e}\n" if e else "") + f"data: {d if isinstance(d, str) else json.dumps(d)}\n\n"
        for e, d in events
    ).encode()


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("POST", "/v1/chat/completions", "", Endpoint(protocol=CHAT, path="/v1/chat/completions")),
        ("POST", "/v1/responses", "", Endpoint(protocol=RESPONSES, path="/v1/responses")),
        (
            "POST",
            "/v1/messages",
            "beta=true",
            Endpoint(protocol=MESSAGES, path="/v1/messages", query="beta=true"),
        ),
        ("GET", "/v1/models", "", Endpoint(protocol=WireProtocol.MODELS, path="/v1/models")),
        (
            "GET",
            "/v1/models/gpt-4",
            "",
            Endpoint(protocol=WireProtocol.MODELS, path="/v1/models/gpt-4"),
        ),
        (
            "POST",
            "/openai/deployments/dep/chat/completions",
            "api-version=2024-10-21&x=1",
            Endpoint(protocol=CHAT, path="/v1/chat/completions", query="x=1", deployment="dep"),
        ),
        ("GET", "/v1/chat/completions", "", None),
        ("POST", "/v1/embeddings", "", None),
        ("POST", "/v2/messages", "", None),
    ],
)
def test_endpoints(method: str, path: str, query: str, expected: Endpoint | None) -> None:
    assert match_endpoint(method, path, query) == expected


def test_request_facts_and_their_errors() -> None:
    chat = Endpoint(protocol=CHAT, path="/v1/chat/completions")
    assert read_request(chat, b'{"model": "m", "stream": true}').stream
    azure = Endpoint(protocol=CHAT, path="/v1/chat/completions", deployment="dep")
    assert read_request(azure, b'{"messages": []}').model == "dep"
    models = Endpoint(protocol=WireProtocol.MODELS, path="/v1/models/gpt-4")
    assert read_request(models, b"").model == "gpt-4"
    for body, message in [
        (b"{", "not JSON"),
        (b"\xff", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"model": ""}', "names no model"),
        (b'{"model": 3}', "names no model"),
        (b'{"model": "m", "stream": 1}', "`stream` must be true or false"),
    ]:
        with pytest.raises(BadModelRequest, match=message):
            read_request(chat, body)


def test_error_shapes() -> None:
    assert json.loads(error_body(429, "spent", anthropic=False)) == {
        "error": {
            "message": "spent",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    assert json.loads(error_body(401, "no", anthropic=False))["error"]["code"] == "invalid_api_key"
    assert json.loads(error_body(502, "down", anthropic=False))["error"]["type"] == "server_error"
    assert json.loads(error_body(429, "spent", anthropic=True)) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "spent"},
    }
    kinds = {
        s: json.loads(error_body(s, "x", anthropic=True))["error"]["type"]
        for s in (400, 401, 404, 500, 529)
    }
    assert kinds == {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        500: "api_error",
        529: "overloaded_error",
    }


def test_usage_from_bodies() -> None:
    assert usage_from_body(CHAT, b'{"usage": {"prompt_tokens": 3, "completion_tokens": 4}}') == (
        Usage(input_tokens=3, output_tokens=4)
    )
    assert usage_from_body(RESPONSES, b'{"usage": {"input_tokens": 5, "output_tokens": 6}}') == (
        Usage(input_tokens=5, output_tokens=6)
    )
    cached = b'{"usage": {"input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 2}}'
    assert usage_from_body(MESSAGES, cached) == Usage(input_tokens=105, output_tokens=2)
    assert usage_from_body(CHAT, b'{"usage": null}') is None
    assert usage_from_body(CHAT, b'{"id": 1}') is None
    assert usage_from_body(CHAT, b"not json") is None
    assert usage_from_body(
        RESPONSES, b'{"usage": {"input_tokens": -1, "output_tokens": true}}'
    ) == (Usage(input_tokens=0, output_tokens=0))


def test_chat_stream() -> None:
    chunk = {"choices": [{"delta": {"content": "hi"}}]}
    done = sse(
        (None, chunk),
        (None, {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}),
        (None, "[DONE]"),
    )
    facts = read_stream(CHAT, done)
    assert facts.complete and facts.usage == Usage(input_tokens=9, output_tokens=2)
    cut = read_stream(CHAT, sse((None, chunk)))
    assert not cut.complete and cut.usage is None


def test_responses_stream() -> None:
    usage = {"input_tokens": 4, "output_tokens": 8}
    body = sse(
        ("response.created", {"type": "response.created", "response": {"usage": None}}),
        ("response.completed", {"type": "response.completed", "response": {"usage": usage}}),
    )
    assert read_stream(RESPONSES, body).usage == Usage(input_tokens=4, output_tokens=8)
    assert read_stream(RESPONSES, body).complete
    failed = sse(("error", {"type": "error", "message": "context too long"}))
    assert read_stream(RESPONSES, failed).error == "context too long"
    assert not read_stream(RESPONSES, failed).complete


def test_anthropic_stream() -> None:
    body = sse(
        (
            "message_start",
            {
                "type": "message_start",
                "message": {"usage": {"input_tokens": 20, "output_tokens": 1}},
            },
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "x"}},
        ),
        ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 30}}),
        ("message_stop", {"type": "message_stop"}),
    )
    facts = read_stream(MESSAGES, body)
    assert facts.complete and facts.usage == Usage(input_tokens=20, output_tokens=30)
    cut = read_stream(MESSAGES, body[: body.index(b"event: message_stop")])
    assert not cut.complete and cut.usage == Usage(input_tokens=20, output_tokens=30)
    overloaded = sse(
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    )
    assert read_stream(MESSAGES, overloaded).error == "Overloaded"
    assert read_stream(MESSAGES, b"").usage is None


def test_estimate_over_counts() -> None:
    assert estimate(b"x" * 10, b"y" * 3) == Usage(input_tokens=4, output_tokens=1)
    assert estimate(b"", b"") == Usage(input_tokens=0, output_tokens=0)


@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
            max_size=30,
        ),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["\n", "\r\n"]),
)
def test_sse_data_lines_round_trip(lines: list[str], newline: str) -> None:
    payload = "".join(f"data: {line}{newline}" for line in lines) + newline
    assert list(sse_events(payload.encode())) == [("message", "\n".join(lines))]
