"""A turn as Anthropic Messages: `message` bodies and their SSE event streams, the shapes
`anthropic.types.Message` / `RawMessageStreamEvent` parse."""

from __future__ import annotations

import json
from typing import Any

from codefactory.engines.replay.sse import frame, pieces
from codefactory.engines.replay.turn import Envelope, Turn


def messages_body(turn: Turn, envelope: Envelope) -> dict[str, Any]:
    """The `message` object answering with `turn`. A malformed-JSON tool call carries its
    arguments text as `input` (a string, where an object belongs), the only way a parsed
    body can hold JSON that does not parse."""
    blocks: list[dict[str, Any]] = []
    if turn.text is not None:
        blocks.append({"type": "text", "text": turn.text})
    blocks += [
        {"type": "tool_use", "id": f"toolu_{c.id}", "name": c.name, "input": _input(c.arguments)}
        for c in turn.calls
    ]
    message = _message(envelope, blocks, _stop(turn))
    if turn.usage is not None:
        message["usage"] = _usage(turn.usage.input_tokens, turn.usage.output_tokens)
    return message


def messages_stream(turn: Turn, envelope: Envelope) -> list[bytes]:
    """`message_start` (usage with the input tokens), `ping`, per block `content_block_start`,
    `content_block_delta` (`text_delta` / `input_json_delta` in pieces) and
    `content_block_stop`, then `message_delta` (stop reason, output tokens), `message_stop`."""
    start = _message(envelope, [], None)
    if turn.usage is not None:
        start["usage"] = _usage(turn.usage.input_tokens, 1)
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if turn.text is not None:
        text_deltas = [{"type": "text_delta", "text": p} for p in pieces(turn.text)]
        blocks.append(({"type": "text", "text": ""}, text_deltas))
    for call in turn.calls:
        opening = {"type": "tool_use", "id": f"toolu_{call.id}", "name": call.name, "input": {}}
        json_deltas = [
            {"type": "input_json_delta", "partial_json": p} for p in pieces(call.arguments)
        ]
        blocks.append((opening, json_deltas))
    for index, (opening, deltas) in enumerate(blocks):
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    closing: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": _stop(turn), "stop_sequence": None},
    }
    if turn.usage is not None:
        closing["usage"] = {"output_tokens": turn.usage.output_tokens}
    events += [closing, {"type": "message_stop"}]
    return [frame(event, event=event["type"]) for event in events]


def _message(envelope: Envelope, content: list[dict[str, Any]], stop: str | None) -> dict[str, Any]:
    return {
        "id": f"msg_{envelope.id}",
        "type": "message",
        "role": "assistant",
        "model": envelope.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
    }


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _input(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _stop(turn: Turn) -> str:
    return "tool_use" if turn.calls else "end_turn"
