"""Wire protocols: endpoints by path, request facts, error shapes, usage and stream ends."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.engines.gateway.grants import Grant
from codefactory.engines.gateway.protocols import (
    BadModelRequest,
    Endpoint,
    WireProtocol,
    error_body,
    match_endpoint,
    read_request,
    valid_model_id,
)
from codefactory.engines.gateway.screening import model_refusal, provider_work_refusal
from codefactory.engines.gateway.usage import (
    Usage,
    estimate,
    read_stream,
    sse_events,
    usage_from_body,
)
from codefactory.engines.session import Budget, Price

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
    # A count past 2**53 - 1 would not stay exact in the audit log's JSON (RFC 8785): kept
    # as the largest exact one, which spends any budget; its cost stays a finite float.
    huge = b'{"usage": {"prompt_tokens": 9007199254740993, "completion_tokens": 1%s}}' % (
        b"0" * 400
    )
    assert usage_from_body(CHAT, huge) == Usage(input_tokens=2**53 - 1, output_tokens=2**53 - 1)
    summed = b'{"usage": {"input_tokens": 9007199254740991, "cache_read_input_tokens": 9}}'
    assert usage_from_body(MESSAGES, summed) == Usage(input_tokens=2**53 - 1, output_tokens=0)
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


def test_unparseable_bodies_are_bad_requests_not_crashes() -> None:
    """G7: nesting past the recursion limit and integers past the digit limit are 400s."""
    chat = Endpoint(protocol=CHAT, path="/v1/chat/completions")
    nested = b'{"model":"m","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    huge = b'{"model":"m","n":' + b"9" * 5000 + b"}"
    with pytest.raises(BadModelRequest, match="nested too deeply"):
        read_request(chat, nested)
    with pytest.raises(BadModelRequest, match="not JSON"):
        read_request(chat, huge)
    assert usage_from_body(CHAT, nested) is None and usage_from_body(CHAT, huge) is None
    stream = b"data: " + b"[" * 100_000 + b'\n\ndata: {"usage": ' + b"9" * 5000 + b"}\n\n"
    assert read_stream(CHAT, stream).usage is None


def test_a_key_twice_in_one_object_is_a_bad_request() -> None:
    """A provider that keeps the first value would see what the gateway never screened."""
    chat = Endpoint(protocol=CHAT, path="/v1/chat/completions")
    with pytest.raises(BadModelRequest, match="'tools' appears twice"):
        read_request(chat, b'{"model":"m","tools":[{"type":"web_search"}],"tools":[]}')
    with pytest.raises(BadModelRequest, match="'model' appears twice"):
        read_request(chat, b'{"model":"gpt-5","model":"m"}')


def test_request_facts_name_the_most_output_asked_for() -> None:
    chat = Endpoint(protocol=CHAT, path="/v1/chat/completions")
    responses = Endpoint(protocol=RESPONSES, path="/v1/responses")
    messages = Endpoint(protocol=MESSAGES, path="/v1/messages")
    assert read_request(chat, b'{"model": "m", "max_completion_tokens": 9}').max_output == 9
    assert read_request(chat, b'{"model": "m", "max_tokens": 8}').max_output == 8
    assert read_request(chat, b'{"model": "m", "max_tokens": true}').max_output is None
    assert read_request(responses, b'{"model": "m", "max_output_tokens": 7}').max_output == 7
    assert read_request(messages, b'{"model": "m", "max_tokens": 32000}').max_output == 32000
    assert read_request(messages, b'{"model": "m"}').max_output is None


@pytest.mark.parametrize(
    ("model", "valid"),
    [
        ("gpt-4.1-mini", True),
        ("claude-sonnet-4-5-20250929", True),
        ("ft:gpt-4o:org:x", True),
        (".", False),
        ("..", False),
        ("x?api-version=evil", False),
        ("gpt#frag", False),
        ("a%2Fb", False),
        ("", False),
    ],
)
def test_model_ids_in_paths(model: str, valid: bool) -> None:
    """G5: only plain ids may name a model in `/v1/models/{id}`."""
    assert valid_model_id(model) is valid


def _grant(model: str = "gpt-4.1-mini", **budget: object) -> Grant:
    return Grant(
        run_id="r",
        agent_id="a",
        sponsor="s",
        engine="e",
        model=model,
        budget=Budget(**budget),  # type: ignore[arg-type]
        granted_at=0.0,
        extra_models=("claude-haiku-4-5",),
    )


def test_only_the_grants_models_may_be_called() -> None:
    """G1: exact model ids only (a dated snapshot is another model); Azure deployments
    too; an unpriced model is refused while the budget caps cost and has prices."""
    grant = _grant(prices={"gpt-4.1-mini": Price(input_per_mtok=1, output_per_mtok=1)})
    chat = Endpoint(protocol=CHAT, path="/v1/chat/completions")
    assert model_refusal(grant, chat, "gpt-4.1-mini") is None
    for other in ("o1-pro", "gpt-4.1-mini-2025-04-14", "gpt-4.1", "GPT-4.1-MINI"):
        assert "is not cleared for this run" in (model_refusal(grant, chat, other) or "")
    azure = Endpoint(protocol=CHAT, path="/v1/chat/completions", deployment="o1-pro")
    assert "'o1-pro' is not cleared" in (model_refusal(grant, azure, "gpt-4.1-mini") or "")
    # The extra model is allowed, but has no price while cost is capped: fail closed.
    assert "no price" in (model_refusal(grant, chat, "claude-haiku-4-5") or "")
    uncapped = _grant(cost_usd=None, prices=grant.budget.prices)
    assert model_refusal(uncapped, chat, "claude-haiku-4-5") is None
    assert _grant().models == ("gpt-4.1-mini", "claude-haiku-4-5")


# Claude Code 2.1.328's own tools, as it sends them (captured): custom tools, no `type`.
CLAUDE_CODE_TOOLS = [
    {"name": "Bash", "description": "run", "input_schema": {"type": "object"}},
    {"name": "Edit", "description": "edit", "input_schema": {"type": "object"}},
    {"name": "ToolSearch", "input_schema": {"type": "object"}, "defer_loading": False},
]
FUNCTION = {"type": "function", "function": {"name": "f", "parameters": {}}}
RESPONSES_FUNCTION = {"type": "function", "name": "f", "parameters": {}}


@pytest.mark.parametrize(
    ("protocol", "document", "refused"),
    [
        (CHAT, {"tools": [FUNCTION, {"type": "custom", "custom": {"name": "g"}}]}, ""),
        (CHAT, {"tools": [{"type": "web_search"}]}, "type 'web_search'"),
        (CHAT, {"web_search_options": {}}, "web_search_options"),
        (CHAT, {"store": True}, "store: true"),
        (CHAT, {"store": False}, ""),
        (CHAT, {"tools": "x"}, "must be a list"),
        (RESPONSES, {"tools": [RESPONSES_FUNCTION, {"type": "custom", "name": "g"}]}, ""),
        (RESPONSES, {"tools": [{"type": "mcp", "server_url": "https://x"}]}, "type 'mcp'"),
        (RESPONSES, {"tools": [{"type": "web_search_preview"}]}, "web_search_preview"),
        (RESPONSES, {"tools": [{"type": "file_search"}]}, "file_search"),
        (RESPONSES, {"tools": [{"type": "code_interpreter"}]}, "code_interpreter"),
        (RESPONSES, {"tools": [{"type": "computer_use_preview"}]}, "computer_use_preview"),
        (RESPONSES, {"tools": [{"type": "image_generation"}]}, "image_generation"),
        (RESPONSES, {"tools": [{"type": "local_shell"}]}, "local_shell"),
        (RESPONSES, {"tools": [{"name": "untyped"}]}, "type None"),
        (RESPONSES, {"store": True}, "store: true"),
        (RESPONSES, {"background": True}, "background"),
        (RESPONSES, {"prompt": {"id": "pmpt_1"}}, "stored `prompt`"),
        (MESSAGES, {"tools": CLAUDE_CODE_TOOLS}, ""),
        (MESSAGES, {"tools": [{"type": "custom", "name": "x", "input_schema": {}}]}, ""),
        (MESSAGES, {"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server"),
        (MESSAGES, {"tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}]}, "server"),
        (MESSAGES, {"tools": [{"type": "code_execution_20250825", "name": "c"}]}, "server"),
        (MESSAGES, {"tools": [{"type": "bash_20250124", "name": "bash"}]}, "server"),
        (MESSAGES, {"tools": [{"type": "computer_20250124", "name": "computer"}]}, "server"),
        (MESSAGES, {"mcp_servers": [{"type": "url", "url": "https://x"}]}, "mcp_servers"),
        (MESSAGES, {"container": "c_1"}, "container"),
        # content the provider would fetch from a URL of the caller's choosing
        (
            CHAT,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "https://x.example/?d=secret"},
                            }
                        ],
                    }
                ]
            },
            "fetch a URL",
        ),
        (
            CHAT,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/png;base64,AAAA"},
                            }
                        ],
                    }
                ]
            },
            "",
        ),
        (
            RESPONSES,
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_file", "file_url": "https://x.example/f.pdf"}],
                    }
                ]
            },
            "fetch a URL",
        ),
        (
            RESPONSES,
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_image", "image_url": "https://x.example/i.png"}
                        ],
                    }
                ]
            },
            "fetch a URL",
        ),
        (
            MESSAGES,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "url", "url": "https://x.example/i.png"},
                            }
                        ],
                    }
                ]
            },
            "fetch a URL",
        ),
        (
            MESSAGES,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_use",
                                "id": "t",
                                "name": "Fetch",
                                "input": {"url": "https://x"},
                            }
                        ],
                    }
                ]
            },
            "",
        ),
    ],
)
def test_provider_side_work_is_refused(
    protocol: WireProtocol, document: dict[str, object], refused: str
) -> None:
    """G2: tools the provider would run itself, MCP servers, provider-side storage."""
    refusal = provider_work_refusal(protocol, {"model": "m", **document})
    if refused:
        assert refusal is not None and refused in refusal
    else:
        assert refusal is None


def test_a_codex_namespace_of_function_tools_passes_and_one_hiding_a_server_tool_does_not() -> None:
    # Codex sends an MCP server's tools grouped as one `namespace` entry (seen with the
    # context engine configured as its MCP server)
    function = {"type": "function", "name": "codefactory-context__jira_fetch", "parameters": {}}
    grouped = {"type": "namespace", "name": "codefactory-context", "tools": [function]}
    protocol = WireProtocol.OPENAI_RESPONSES
    assert provider_work_refusal(protocol, {"model": "m", "tools": [grouped]}) is None
    hiding = dict(grouped, tools=[function, {"type": "web_search"}])
    refusal = provider_work_refusal(protocol, {"model": "m", "tools": [hiding]})
    assert refusal is not None and "namespace" in refusal and "web_search" in refusal
