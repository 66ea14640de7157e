"""Rendered turns are exactly what the official SDKs' types accept (strict validation), and
the streamed deltas add up to the whole turn."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from codefactory.engines.replay.render_chat import chat_body, chat_stream
from codefactory.engines.replay.render_messages import messages_body, messages_stream
from codefactory.engines.replay.render_responses import responses_body, responses_stream
from codefactory.engines.replay.script import Usage
from codefactory.engines.replay.turn import Call, Envelope, Turn

ARGS = json.dumps({"path": "src/a_rather_long_module_name.py", "start": 10})
CALLS = Turn(
    calls=(
        Call(id="s0n0c0", name="read_file", arguments=ARGS),
        Call(id="s0n0c1", name="list_files", arguments="{}"),
    ),
    usage=Usage(input_tokens=120, output_tokens=30),
)
TEXT = Turn(
    text="The bug was an off-by-one in the loop bound.",
    usage=Usage(input_tokens=5, output_tokens=9),
)
BARE = Turn(text="no usage here")
ENVELOPE = Envelope(id="replay000001", model="gpt-4.1-mini", created=1_700_000_000)
STREAM_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
ANTHROPIC_EVENTS: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


def sse(frames: list[bytes]) -> list[tuple[str | None, str]]:
    """(event name, data) of each frame, checking the framing on the way."""
    parsed = []
    for raw in frames:
        text = raw.decode()
        assert text.endswith("\n\n") and text.count("\n\n") == 1
        lines = text.strip("\n").split("\n")
        event = lines[0].removeprefix("event: ") if lines[0].startswith("event: ") else None
        assert lines[-1].startswith("data: ")
        parsed.append((event, lines[-1].removeprefix("data: ")))
    return parsed


def test_chat_bodies_parse_as_chat_completions() -> None:
    calls = ChatCompletion.model_validate(chat_body(CALLS, ENVELOPE), strict=True)
    choice = calls.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [
        (c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []
    ] == [
        ("call_s0n0c0", "read_file", ARGS),
        ("call_s0n0c1", "list_files", "{}"),
    ]
    assert calls.usage is not None and calls.usage.total_tokens == 150
    text = ChatCompletion.model_validate(chat_body(TEXT, ENVELOPE), strict=True)
    assert text.choices[0].finish_reason == "stop" and text.choices[0].message.content == TEXT.text
    assert "usage" not in chat_body(BARE, ENVELOPE)


@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_streams_parse_as_chunks_and_add_up(include_usage: bool) -> None:
    envelope = Envelope(id="x", model="m", created=1, include_usage=include_usage)
    events = sse(chat_stream(CALLS, envelope))
    assert events[-1] == (None, "[DONE]")
    chunks = [
        ChatCompletionChunk.model_validate(json.loads(data), strict=True) for _, data in events[:-1]
    ]
    arguments: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                arguments[delta.index] = arguments.get(delta.index, "") + (
                    delta.function.arguments or "" if delta.function else ""
                )
    assert arguments == {0: ARGS, 1: "{}"}
    # The arguments came in several pieces, as a real stream sends them.
    assert (
        sum(
            1 for c in chunks for ch in c.choices for d in ch.delta.tool_calls or [] if d.index == 0
        )
        > 2
    )
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["tool_calls"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
    else:
        assert usage_chunks == [] and all("usage" not in json.loads(d) for _, d in events[:-1])


def test_responses_bodies_parse_as_responses() -> None:
    calls = Response.model_validate(responses_body(CALLS, ENVELOPE), strict=True)
    assert [(o.type, getattr(o, "call_id", None)) for o in calls.output] == [
        ("function_call", "call_s0n0c0"),
        ("function_call", "call_s0n0c1"),
    ]
    assert calls.usage is not None and calls.usage.output_tokens == 30
    text = Response.model_validate(responses_body(TEXT, ENVELOPE), strict=True)
    assert text.output_text == TEXT.text
    assert "usage" not in responses_body(BARE, ENVELOPE)


@pytest.mark.parametrize("turn", [CALLS, TEXT], ids=["calls", "text"])
def test_responses_streams_parse_as_stream_events(turn: Turn) -> None:
    events = sse(responses_stream(turn, ENVELOPE))
    parsed = [STREAM_EVENTS.validate_python(json.loads(data), strict=True) for _, data in events]
    assert [name for name, _ in events] == [e.type for e in parsed]
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    names = [e.type for e in parsed]
    assert (
        names[:2] == ["response.created", "response.in_progress"]
        and names[-1] == "response.completed"
    )
    final = parsed[-1].response
    assert final.usage is not None and final.status == "completed"
    if turn.calls:
        deltas = "".join(
            e.delta
            for e in parsed
            if e.type == "response.function_call_arguments.delta" and e.output_index == 0
        )
        assert deltas == ARGS
        assert names.count("response.function_call_arguments.done") == 2
    else:
        assert (
            "".join(e.delta for e in parsed if e.type == "response.output_text.delta") == TEXT.text
        )
    assert (
        names.count("response.output_item.added")
        == names.count("response.output_item.done")
        == len(final.output)
    )


def test_messages_bodies_parse_as_anthropic_messages() -> None:
    calls = Message.model_validate(messages_body(CALLS, ENVELOPE), strict=True)
    assert calls.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "id", None)) for b in calls.content] == [
        ("tool_use", "toolu_s0n0c0"),
        ("tool_use", "toolu_s0n0c1"),
    ]
    assert calls.content[0].input == json.loads(ARGS)  # type: ignore[union-attr]
    text = Message.model_validate(messages_body(TEXT, ENVELOPE), strict=True)
    assert text.stop_reason == "end_turn" and text.usage.output_tokens == 9
    assert "usage" not in messages_body(BARE, ENVELOPE)


@pytest.mark.parametrize("turn", [CALLS, TEXT], ids=["calls", "text"])
def test_messages_streams_parse_as_raw_stream_events(turn: Turn) -> None:
    events = sse(messages_stream(turn, ENVELOPE))
    parsed = [
        ANTHROPIC_EVENTS.validate_python(json.loads(d), strict=True)
        for n, d in events
        if n != "ping"
    ]
    names = [e.type for e in parsed]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert parsed[0].message.usage.input_tokens == turn.usage.input_tokens  # type: ignore[union-attr]
    delta = parsed[-2]
    assert delta.usage.output_tokens == turn.usage.output_tokens  # type: ignore[union-attr]
    assert delta.delta.stop_reason == ("tool_use" if turn.calls else "end_turn")
    if turn.calls:
        json_text = "".join(
            e.delta.partial_json for e in parsed if e.type == "content_block_delta" and e.index == 0
        )
        assert json.loads(json_text) == json.loads(ARGS)
    else:
        assert "".join(e.delta.text for e in parsed if e.type == "content_block_delta") == TEXT.text
    assert names.count("content_block_start") == names.count("content_block_stop")


def test_without_usage_no_stream_carries_a_usage_block() -> None:
    for frames in (
        chat_stream(BARE, ENVELOPE),
        responses_stream(BARE, ENVELOPE),
        messages_stream(BARE, ENVELOPE),
    ):
        for _, data in sse(frames):
            if data != "[DONE]":
                document = json.loads(data)
                assert document.get("usage") is None
                for key in ("response", "message"):
                    assert document.get(key, {}).get("usage") is None


def test_malformed_arguments_stay_text_in_every_protocol() -> None:
    broken = Turn(calls=(Call(id="a", name="read_file", arguments='{"path":"x"'),))
    assert (
        chat_body(broken, ENVELOPE)["choices"][0]["message"]["tool_calls"][0]["function"][
            "arguments"
        ]
        == '{"path":"x"'
    )
    assert responses_body(broken, ENVELOPE)["output"][0]["arguments"] == '{"path":"x"'
    assert messages_body(broken, ENVELOPE)["content"][0]["input"] == '{"path":"x"'
    partial = "".join(
        json.loads(d)["delta"]["partial_json"]
        for _, d in sse(messages_stream(broken, ENVELOPE))
        if '"input_json_delta"' in d
    )
    assert partial == '{"path":"x"'
