"""A turn as OpenAI Chat Completions: `chat.completion` bodies and `chat.completion.chunk`
streams, the shapes `openai.types.chat.ChatCompletion` / `ChatCompletionChunk` parse."""

from __future__ import annotations

from typing import Any

from codefactory.engines.replay.sse import frame, pieces
from codefactory.engines.replay.turn import Envelope, Turn


def chat_body(turn: Turn, envelope: Envelope) -> dict[str, Any]:
    """The `chat.completion` object answering with `turn`."""
    message: dict[str, Any] = {"role": "assistant", "content": turn.text, "refusal": None}
    if turn.calls:
        message["tool_calls"] = [
            {
                "id": f"call_{call.id}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in turn.calls
        ]
    body = _head(envelope, "chat.completion")
    body["choices"] = [
        {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(turn)}
    ]
    if turn.usage is not None:
        body["usage"] = _usage(turn)
    return body


def chat_stream(turn: Turn, envelope: Envelope) -> list[bytes]:
    """The chunks of `turn`: role, text deltas, tool-call deltas (name first, then the
    arguments in pieces), the finish reason, the usage chunk when `include_usage` asked for
    it, then `[DONE]`."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    if turn.text is not None:
        deltas += [{"content": piece} for piece in pieces(turn.text)]
    for index, call in enumerate(turn.calls):
        opening = {"id": f"call_{call.id}", "type": "function"}
        deltas.append(
            {
                "tool_calls": [
                    {"index": index, **opening, "function": {"name": call.name, "arguments": ""}}
                ]
            }
        )
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in pieces(call.arguments)
        ]
    chunks = [_chunk(envelope, delta, None) for delta in deltas]
    chunks.append(_chunk(envelope, {}, _finish(turn)))
    if envelope.include_usage and turn.usage is not None:
        last = _head(envelope, "chat.completion.chunk")
        last.update(choices=[], usage=_usage(turn))
        chunks.append(last)
    return [frame(chunk) for chunk in chunks] + [frame("[DONE]")]


def _chunk(envelope: Envelope, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    chunk = _head(envelope, "chat.completion.chunk")
    chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    if envelope.include_usage:
        # OpenAI sends `usage: null` on every chunk but the last when usage was asked for.
        chunk["usage"] = None
    return chunk


def _head(envelope: Envelope, kind: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{envelope.id}",
        "object": kind,
        "created": envelope.created,
        "model": envelope.model,
        "system_fingerprint": None,
    }


def _finish(turn: Turn) -> str:
    return "tool_calls" if turn.calls else "stop"


def _usage(turn: Turn) -> dict[str, int]:
    assert turn.usage is not None
    prompt, completion = turn.usage.input_tokens, turn.usage.output_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
