"""What the replay upstream reads from an engine's request, in any of the three protocols.

OpenAI Chat Completions (`messages`, `tools[].function.name`, `role: tool` results), OpenAI
Responses (`input` items, `tools[].name`, `*_call_output` results) and Anthropic Messages
(`messages`, `tools[].name`, `tool_result` content blocks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Protocol(StrEnum):
    """The wire protocol of a request, named as `ModelAccess.protocol` names it."""

    CHAT = "openai-chat"
    RESPONSES = "openai-responses"
    MESSAGES = "anthropic-messages"


class InvalidRequest(ValueError):
    """A request body the replay upstream cannot read; answered with HTTP 400."""


@dataclass(frozen=True, kw_only=True)
class WireRequest:
    """The facts of a request that choose and shape the answer."""

    protocol: Protocol
    model: str | None
    stream: bool
    include_usage: bool
    """Chat Completions `stream_options.include_usage`; the other protocols always report."""
    tools: frozenset[str]
    """Names of the tools the request declares; empty for a side request."""
    results: tuple[str, ...]
    """The text of every tool result the request carries, in conversation order."""
    conversation: str
    """The text of the first user message: what tells one conversation from another."""
    size: int
    """Body length in bytes (for estimated usage)."""


def parse_request(protocol: Protocol, body: bytes) -> WireRequest:
    """The request facts in `body`; raises InvalidRequest when it is not a JSON object of the
    protocol's shape, or (Responses) names a `previous_response_id`: the replay upstream
    keeps no conversation state, so the request must carry the whole history."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidRequest(f"the request body is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if protocol is Protocol.RESPONSES:
        items = _responses_items(document)
    else:
        items = _list(document, "messages")
    return WireRequest(
        protocol=protocol,
        model=document["model"] if isinstance(document.get("model"), str) else None,
        stream=document.get("stream") is True,
        include_usage=_include_usage(document),
        tools=_tool_names(document),
        results=tuple(_results(protocol, items)),
        conversation=_first_user_text(items),
        size=len(body),
    )


def text_of(content: Any) -> str:
    """The text of a message or result `content`: a string, or a list of parts of which the
    `text` (and nested `content`) is joined; anything else as compact JSON."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_part_text(part) for part in content)
    return "" if content is None else json.dumps(content, separators=(",", ":"))


def _part_text(part: Any) -> str:
    if isinstance(part, dict):
        if isinstance(part.get("text"), str):
            return str(part["text"])
        if "content" in part and part.get("type") != "tool_result":
            return text_of(part["content"])
        return ""
    return part if isinstance(part, str) else ""


def _responses_items(document: dict[str, Any]) -> list[Any]:
    if document.get("previous_response_id"):
        raise InvalidRequest(
            "previous_response_id is not supported by the replay upstream: send the full input"
        )
    raw = document.get("input")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    return _list(document, "input")


def _list(document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key)
    if not isinstance(value, list):
        raise InvalidRequest(f"`{key}` must be a list")
    return value


def _include_usage(document: dict[str, Any]) -> bool:
    options = document.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _tool_names(document: dict[str, Any]) -> frozenset[str]:
    names: set[str] = set()
    for key in ("tools", "functions"):
        declared = document.get(key)
        for tool in declared if isinstance(declared, list) else []:
            if not isinstance(tool, dict):
                continue
            function = tool.get("function")
            name = function.get("name") if isinstance(function, dict) else tool.get("name")
            # A tool without a name (a hosted tool such as web search) still declares tools.
            names.add(name if isinstance(name, str) else f"<{tool.get('type', 'tool')}>")
    return frozenset(names)


def _results(protocol: Protocol, items: list[Any]) -> list[str]:
    found: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if protocol is Protocol.CHAT and item.get("role") in {"tool", "function"}:
            found.append(text_of(item.get("content")))
        elif protocol is Protocol.RESPONSES and str(item.get("type", "")).endswith("_call_output"):
            found.append(text_of(item.get("output")))
        elif protocol is Protocol.MESSAGES and isinstance(item.get("content"), list):
            found.extend(
                text_of(block.get("content"))
                for block in item["content"]
                if isinstance(block, dict) and block.get("type") == "tool_result"
            )
    return found


def _first_user_text(items: list[Any]) -> str:
    for item in items:
        if isinstance(item, dict) and item.get("role") == "user":
            return text_of(item.get("content"))
    return ""
