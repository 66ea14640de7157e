"""A turn as OpenAI Responses: `response` objects and their SSE event streams, the shapes
`openai.types.responses.Response` / `ResponseStreamEvent` parse."""

from __future__ import annotations

from typing import Any

from codefactory.engines.replay.sse import frame, pieces
from codefactory.engines.replay.turn import Envelope, Turn


def responses_body(turn: Turn, envelope: Envelope) -> dict[str, Any]:
    """The completed `response` object answering with `turn`."""
    return _response(envelope, "completed", _items(turn, envelope), turn)


def responses_stream(turn: Turn, envelope: Envelope) -> list[bytes]:
    """`response.created`, `response.in_progress`, then per output item `output_item.added`,
    its deltas (`output_text.delta` or `function_call_arguments.delta`) and their `.done`
    events, `output_item.done`, and finally `response.completed` with the usage."""
    events: list[dict[str, Any]] = []
    opening = _response(envelope, "in_progress", [], None)
    events += [
        {"type": "response.created", "response": opening},
        {"type": "response.in_progress", "response": opening},
    ]
    for index, item in enumerate(_items(turn, envelope)):
        events += _item_events(index, item)
    events.append({"type": "response.completed", "response": responses_body(turn, envelope)})
    return [
        frame({**event, "sequence_number": number}, event=event["type"])
        for number, event in enumerate(events)
    ]


def _item_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    place = {"output_index": index, "item_id": item["id"]}
    if item["type"] == "function_call":
        added = {**item, "arguments": "", "status": "in_progress"}
        middle: list[dict[str, Any]] = [
            {"type": "response.function_call_arguments.delta", **place, "delta": piece}
            for piece in pieces(item["arguments"])
        ]
        middle.append(
            {
                "type": "response.function_call_arguments.done",
                **place,
                "name": item["name"],
                "arguments": item["arguments"],
            }
        )
    else:
        added = {**item, "content": [], "status": "in_progress"}
        part = item["content"][0]
        where = {**place, "content_index": 0}
        middle = [
            {"type": "response.content_part.added", **where, "part": {**part, "text": ""}},
            *(
                {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
                for piece in pieces(part["text"])
            ),
            {"type": "response.output_text.done", **where, "text": part["text"], "logprobs": []},
            {"type": "response.content_part.done", **where, "part": part},
        ]
    return [
        {"type": "response.output_item.added", "output_index": index, "item": added},
        *middle,
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


def _items(turn: Turn, envelope: Envelope) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if turn.text is not None:
        text = {"type": "output_text", "text": turn.text, "annotations": [], "logprobs": []}
        items.append(
            {
                "type": "message",
                "id": f"msg_{envelope.id}",
                "status": "completed",
                "role": "assistant",
                "content": [text],
            }
        )
    items += [
        {
            "type": "function_call",
            "id": f"fc_{call.id}",
            "call_id": f"call_{call.id}",
            "name": call.name,
            "arguments": call.arguments,
            "status": "completed",
        }
        for call in turn.calls
    ]
    return items


def _response(
    envelope: Envelope, status: str, output: list[dict[str, Any]], turn: Turn | None
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": f"resp_{envelope.id}",
        "object": "response",
        "created_at": envelope.created,
        "status": status,
        "model": envelope.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "previous_response_id": None,
        "usage": None,
    }
    if turn is not None:
        if turn.usage is None:
            del response["usage"]
        else:
            response["usage"] = {
                "input_tokens": turn.usage.input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": turn.usage.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": turn.usage.input_tokens + turn.usage.output_tokens,
            }
    return response
