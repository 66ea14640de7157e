"""Each fault over HTTP, in process through `httpx.ASGITransport` (how the gateway calls the
replay upstream): status, headers, and the provider's error or body shape per protocol."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from codefactory.engines.replay import build_replay_app

PATHS = {
    "openai-chat": "/v1/chat/completions",
    "azure": "/openai/deployments/gpt4/chat/completions?api-version=2024-10-21",
    "openai-responses": "/v1/responses",
    "anthropic-messages": "/v1/messages?beta=true",
}
TOOL_CHAT = {"type": "function", "function": {"name": "read_file", "parameters": {}}}


def body(protocol: str, *, stream: bool = False, prompt: str = "fix it") -> dict[str, Any]:
    if protocol in {"openai-chat", "azure"}:
        return {
            "model": "m",
            "messages": [{"role": "user", "content": prompt}],
            "tools": [TOOL_CHAT],
            "stream": stream,
        }
    if protocol == "openai-responses":
        return {
            "model": "m",
            "input": prompt,
            "tools": [{"type": "function", "name": "read_file"}],
            "stream": stream,
        }
    return {
        "model": "m",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": prompt}],
        "tools": [{"name": "read_file", "input_schema": {"type": "object"}}],
        "stream": stream,
    }


def exchange(
    tmp_path: Path, steps: list[Any], calls: list[tuple[str, dict[str, Any]]]
) -> list[httpx.Response]:
    """Serve `steps` and send each (protocol, body) in order; the responses, read in full."""
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"model": "gpt-4.1-mini", "steps": steps}))
    app = build_replay_app(path)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replay") as client:
            return [await client.post(PATHS[p], json=b) for p, b in calls]

    return asyncio.run(run())


def openai_error(response: httpx.Response) -> dict[str, Any]:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


def anthropic_error(response: httpx.Response) -> dict[str, Any]:
    document = response.json()
    assert document["type"] == "error" and set(document["error"]) == {"type", "message"}
    return dict(document["error"])


@pytest.mark.parametrize("protocol", ["openai-chat", "azure", "openai-responses"])
def test_rate_limit_server_error_overloaded_in_openai_shape(tmp_path: Path, protocol: str) -> None:
    steps = [
        {"fault": "rate_limit", "retry_after": 2},
        {"fault": "server_error"},
        {"fault": "overloaded", "retry_after": 1},
        {"text": "done"},
    ]
    limited, failed, overloaded, done = exchange(tmp_path, steps, [(protocol, body(protocol))] * 4)
    assert limited.status_code == 429
    assert (limited.headers["retry-after"], limited.headers["retry-after-ms"]) == ("2", "2000")
    assert openai_error(limited)["code"] == "rate_limit_exceeded"
    assert failed.status_code == 500 and openai_error(failed)["type"] == "server_error"
    assert "retry-after" not in failed.headers
    assert overloaded.status_code == 529 and openai_error(overloaded)["code"] == "overloaded"
    assert done.status_code == 200


def test_rate_limit_server_error_overloaded_in_anthropic_shape(tmp_path: Path) -> None:
    steps = [
        {"fault": "rate_limit"},
        {"fault": "server_error"},
        {"fault": "overloaded"},
        {"text": "done"},
    ]
    call = ("anthropic-messages", body("anthropic-messages"))
    limited, failed, overloaded, done = exchange(tmp_path, steps, [call] * 4)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"  # the default
    assert anthropic_error(limited)["type"] == "rate_limit_error"
    assert failed.status_code == 500 and anthropic_error(failed)["type"] == "api_error"
    assert (
        overloaded.status_code == 529 and anthropic_error(overloaded)["type"] == "overloaded_error"
    )
    assert done.json()["stop_reason"] == "end_turn"


def test_context_length_in_each_providers_words(tmp_path: Path) -> None:
    steps = [{"fault": "context_length", "times": 3}]
    calls = [(p, body(p)) for p in ("openai-chat", "openai-responses", "anthropic-messages")]
    chat, responses, anthropic = exchange(tmp_path, steps, calls)
    assert {chat.status_code, responses.status_code, anthropic.status_code} == {400}
    chat_error, responses_error = openai_error(chat), openai_error(responses)
    assert chat_error["code"] == responses_error["code"] == "context_length_exceeded"
    assert (chat_error["param"], responses_error["param"]) == ("messages", "input")
    assert "maximum context length" in chat_error["message"]
    error = anthropic_error(anthropic)
    assert error["type"] == "invalid_request_error" and error["message"].startswith(
        "prompt is too long"
    )


@pytest.mark.parametrize("protocol", ["openai-chat", "openai-responses", "anthropic-messages"])
def test_a_truncated_body_is_cut_in_half(tmp_path: Path, protocol: str) -> None:
    sentence = "a full sentence that will be cut"
    steps = [{"fault": "truncated", "text": sentence}, {"text": sentence}]
    cut, whole = exchange(tmp_path, steps, [(protocol, body(protocol))] * 2)
    assert cut.status_code == 200 and cut.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        cut.json()
    # The same answer (ids of equal length) whole and cut: exactly its first half.
    assert len(cut.content) == len(whole.content) // 2
    assert cut.content[:12] == whole.content[:12]


@pytest.mark.parametrize(
    ("protocol", "end"),
    [
        ("openai-chat", b"data: [DONE]"),
        ("openai-responses", b"response.completed"),
        ("anthropic-messages", b"message_stop"),
    ],
)
def test_a_truncated_stream_ends_before_its_end_event(
    tmp_path: Path, protocol: str, end: bytes
) -> None:
    steps = [
        {"fault": "truncated", "tool": {"name": "read_file", "arguments": {"path": "a"}}},
        {"text": "done"},
    ]
    cut, whole = exchange(tmp_path, steps, [(protocol, body(protocol, stream=True))] * 2)
    assert cut.headers["content-type"].startswith("text/event-stream")
    assert cut.content.endswith(b"\n\n") and end not in cut.content
    assert end in whole.content


@pytest.mark.parametrize("protocol", ["openai-chat", "openai-responses", "anthropic-messages"])
def test_no_usage_leaves_out_every_usage_block(tmp_path: Path, protocol: str) -> None:
    steps = [{"fault": "no_usage", "text": "done"}]
    plain, streamed = exchange(
        tmp_path, steps, [(protocol, body(protocol)), (protocol, body(protocol, stream=True))]
    )
    assert b'"usage"' not in plain.content
    assert b'"input_tokens"' not in streamed.content and b'"prompt_tokens"' not in streamed.content


def test_unknown_tool_and_malformed_json_reach_the_wire(tmp_path: Path) -> None:
    steps = [
        {"fault": "unknown_tool"},
        {"fault": "malformed_tool_json", "tool": {"name": "read_file", "arguments": {"path": "a"}}},
    ]
    first = body("openai-chat")
    second = body("openai-chat")
    second["messages"] += [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "x", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "unknown tool"},
    ]
    unknown, malformed = exchange(
        tmp_path, steps, [("openai-chat", first), ("openai-chat", second)]
    )
    (call,) = unknown.json()["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "undeclared_tool"
    (call,) = malformed.json()["choices"][0]["message"]["tool_calls"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(call["function"]["arguments"])


def test_strict_mismatch_is_a_409_in_the_provider_shape(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps(
            {"steps": [{"tool": {"name": "read_file"}, "expect_result": "alpha"}, {"text": "ok"}]}
        )
    )
    app = build_replay_app(path, strict=True)
    answered = body("anthropic-messages")
    answered["messages"] += [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "read_file", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t", "content": "beta"}],
        },
    ]

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://r"
        ) as client:
            return await client.post("/v1/messages", json=answered)

    response = asyncio.run(run())
    assert response.status_code == 409
    assert anthropic_error(response)["message"].startswith("replay mismatch at step 0: ")


def test_bad_requests_are_400_in_the_provider_shape(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"steps": [{"text": "ok"}]}))
    app = build_replay_app(path)

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://r"
        ) as client:
            return [
                await client.post("/v1/chat/completions", content=b"{not json"),
                await client.post("/v1/messages", json={"messages": 3}),
            ]

    chat, messages = asyncio.run(run())
    assert chat.status_code == 400 and "not JSON" in openai_error(chat)["message"]
    assert (
        messages.status_code == 400 and anthropic_error(messages)["type"] == "invalid_request_error"
    )


def test_models_list_in_both_shapes(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"model": "claude-sonnet-4-5", "steps": [{"text": "ok"}]}))
    app = build_replay_app(path)

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://r"
        ) as client:
            return [
                await client.get("/v1/models"),
                await client.get("/v1/models", headers={"anthropic-version": "2023-06-01"}),
            ]

    openai_list, anthropic_list = asyncio.run(run())
    assert openai_list.json()["object"] == "list"
    assert [m["id"] for m in openai_list.json()["data"]] == ["claude-sonnet-4-5"]
    assert anthropic_list.json()["data"][0]["type"] == "model"
    assert anthropic_list.json()["has_more"] is False


def test_a_cassette_recorded_on_an_azure_deployment_answers_the_v1_path(tmp_path: Path) -> None:
    path = tmp_path / "azure.yaml"
    path.write_text(
        "interactions:\n"
        "- request: {method: POST, body: '{}',"
        " uri: 'https://bank.openai.azure.com/openai/deployments/gpt4/chat/completions?api-version=1'}\n"
        "  response: {status: {code: 200}, headers: {content-type: [application/json]},"
        " body: {string: '{\"recorded\": true}'}}\n"
    )
    app = build_replay_app(path, strict=True)

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://r"
        ) as client:
            return [await client.post("/v1/chat/completions", json={}) for _ in range(2)]

    first, second = asyncio.run(run())
    assert first.content == b'{"recorded": true}'
    assert first.headers["content-type"] == "application/json"
    assert second.status_code == 409
