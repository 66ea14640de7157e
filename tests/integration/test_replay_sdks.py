"""The official `openai` and `anthropic` SDKs against the replay upstream under uvicorn on
loopback: every protocol streamed and not, Azure's path, the models list, and faults as the
SDKs see them (their own retries honour `retry-after`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from codefactory.engines.replay.server import serving_replay

SCRIPT = {
    "model": "gpt-4.1-mini",
    "steps": [
        {"tool": {"name": "read_file", "arguments": {"path": "src/calc.py"}}},
        {"text": "Fixed."},
    ],
}
FLAKY = {
    "steps": [
        {"fault": "rate_limit", "retry_after": 0, "times": 2},
        {"fault": "overloaded", "retry_after": 0},
        {"text": "after the storm"},
        {"fault": "context_length"},
    ]
}
CHAT_TOOLS: Any = [
    {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}
]
RESPONSES_TOOLS: Any = [
    {"type": "function", "name": "read_file", "parameters": {"type": "object"}, "strict": False}
]
ANTHROPIC_TOOLS: Any = [{"name": "read_file", "input_schema": {"type": "object"}}]


def serve(tmp_path_factory: pytest.TempPathFactory, document: dict[str, Any]) -> Iterator[str]:
    path = tmp_path_factory.mktemp("replay") / "script.json"
    path.write_text(json.dumps(document))
    with serving_replay(path) as url:
        yield url


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(tmp_path_factory, SCRIPT)


@pytest.fixture(scope="module")
def flaky_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(tmp_path_factory, FLAKY)


def test_chat_completions_plain_and_streamed(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
    messages: Any = [{"role": "user", "content": "fix calc"}]
    reply = client.chat.completions.create(
        model="gpt-4.1-mini", messages=messages, tools=CHAT_TOOLS
    )
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.type == "function" and call.function.name == "read_file"
    assert json.loads(call.function.arguments) == {"path": "src/calc.py"}
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    answered = messages + [
        reply.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "def add(a, b): return a - b"},
    ]
    stream = client.chat.completions.create(
        model="gpt-4.1-mini",
        messages=answered,
        tools=CHAT_TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Fixed."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_azure_client_reaches_the_deployment_path(url: str) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=url, api_key="k", api_version="2024-10-21", max_retries=0
    )
    reply = client.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "azure"}], tools=CHAT_TOOLS
    )
    assert reply.choices[0].finish_reason == "tool_calls"


def test_responses_plain_and_streamed(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
    reply = client.responses.create(model="gpt-4.1-mini", input="fix calc", tools=RESPONSES_TOOLS)
    (call,) = reply.output
    assert call.type == "function_call" and call.name == "read_file"
    assert reply.usage is not None and reply.usage.total_tokens > 0
    history: Any = [
        {"role": "user", "content": "fix calc"},
        call.model_dump(exclude_none=True),
        {
            "type": "function_call_output",
            "call_id": call.call_id,
            "output": "def add(a, b): return a - b",
        },
    ]
    with client.responses.stream(
        model="gpt-4.1-mini", input=history, tools=RESPONSES_TOOLS
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == "Fixed."
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds


def test_anthropic_messages_plain_and_streamed(url: str) -> None:
    client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    messages: Any = [{"role": "user", "content": "fix calc"}]
    reply = client.messages.create(
        model="claude-x", max_tokens=256, messages=messages, tools=ANTHROPIC_TOOLS
    )
    (use,) = reply.content
    assert use.type == "tool_use" and use.input == {"path": "src/calc.py"}
    assert reply.stop_reason == "tool_use"
    answered = messages + [
        {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "code"}],
        },
    ]
    with client.messages.stream(
        model="claude-x", max_tokens=256, messages=answered, tools=ANTHROPIC_TOOLS
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and final.content[0].type == "text"
    assert final.content[0].text == "Fixed."
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_models_list_through_both_sdks(url: str) -> None:
    assert [m.id for m in openai.OpenAI(base_url=f"{url}/v1", api_key="k").models.list()] == [
        "gpt-4.1-mini"
    ]
    listed = anthropic.Anthropic(base_url=url, api_key="k").models.list()
    assert [m.id for m in listed.data] == ["gpt-4.1-mini"]


def test_sdk_retries_ride_out_rate_limits_and_overload_then_context_length_fails(
    flaky_url: str,
) -> None:
    client = anthropic.Anthropic(base_url=flaky_url, api_key="k", max_retries=3)
    messages: Any = [{"role": "user", "content": "go"}]
    raw = client.messages.with_raw_response.create(
        model="claude-x", max_tokens=16, messages=messages, tools=ANTHROPIC_TOOLS
    )
    # Two 429s and one 529 were retried by the SDK before this answer.
    assert raw.retries_taken == 3
    assert raw.parse().content[0].text == "after the storm"  # type: ignore[union-attr]
    strict_client = openai.OpenAI(base_url=f"{flaky_url}/v1", api_key="k", max_retries=3)
    with pytest.raises(openai.BadRequestError) as raised:
        strict_client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "next"}], tools=CHAT_TOOLS
        )
    assert raised.value.code == "context_length_exceeded"


def test_a_rate_limit_without_retries_is_the_sdks_rate_limit_error(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps({"steps": [{"fault": "rate_limit", "retry_after": 7}, {"text": "ok"}]})
    )
    with serving_replay(path) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}], tools=CHAT_TOOLS
            )
    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.code == "rate_limit_exceeded"
