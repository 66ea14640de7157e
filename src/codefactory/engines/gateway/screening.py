"""What a call may ask of the provider: which model, and no work done by the provider itself.

**Models.** A call must name the grant's model, or one of the grant's `extra_models` (for
engines that make side requests with a smaller model), exactly: an Azure-style path's
deployment too. A dated snapshot of the grant's model (`gpt-4.1-mini-2025-04-14` for
`gpt-4.1-mini`) is *not* accepted on its own: a snapshot other than the one validated is
another model, with its own behaviour and possibly its own price; a registry entry that
wants a snapshot names it. A model without a price in the run's budget is refused while the
budget caps cost and has a price table (fail closed: its spend could not be counted).

**Provider-side work.** The sandbox lets an engine reach only the gateway; a provider that
calls out on the engine's behalf would be a way around that. Refused (400, `tool-refused`):

- OpenAI Chat Completions and Responses: `tools[]` entries whose `type` is not `function` or
  `custom` (a `namespace`, Codex's group of one MCP server's tools, passes when every tool in
  it does) (`mcp`, `web_search*`, `file_search`, `code_interpreter`, `computer_use*`,
  `image_generation`, `local_shell`, ...); Chat's `web_search_options`; `store: true`
  (a copy kept at the provider); Responses' `background: true` (answered later, by a path
  the gateway does not serve) and `prompt` (a stored prompt may carry its own tools).
  Responses' `store` defaults to true at the provider when omitted; the gateway forwards the
  body byte for byte (the cassette and the recorded digest are of what was sent), so it
  cannot force `false`: engines that can should send it.
- Anthropic Messages: `tools[]` entries with a `type` other than `custom` (server tools:
  `web_search_*`, `web_fetch_*`, `code_execution_*`, `computer_*`, `bash_*`,
  `text_editor_*`, `memory_*`, tool search), `mcp_servers` and `container`. Claude Code's own
  tools (Bash, Edit, Read, ...) are custom tools (a name and an `input_schema`, no `type`):
  they run in the sandbox and pass.
"""

from __future__ import annotations

from typing import Any

from codefactory.engines.gateway.grants import Grant
from codefactory.engines.gateway.protocols import Endpoint, WireProtocol

_OPENAI_TOOL_TYPES = frozenset({"function", "custom"})


def model_refusal(grant: Grant, endpoint: Endpoint, model: str) -> str | None:
    """Why `model` (and the path's Azure deployment) may not be used by `grant`'s run, or
    None when it may."""
    allowed = ", ".join(grant.models)
    for name in dict.fromkeys(n for n in (endpoint.deployment, model) if n):
        if not grant.allows(name):
            return f"model {name!r} is not cleared for this run (allowed: {allowed})"
    budget = grant.budget
    if budget.cost_usd is not None and budget.prices and model not in budget.prices:
        return (
            f"model {model!r} has no price in the run's budget, which caps cost: "
            "its spend could not be counted"
        )
    return None


def _tool_refusal(protocol: WireProtocol, tools: object) -> str | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "`tools` must be a list"
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return f"tools[{index}] is not an object"
        kind = tool.get("type")
        if protocol is WireProtocol.ANTHROPIC_MESSAGES:
            if kind is not None and kind != "custom":
                return f"tools[{index}] is a server tool ({kind!r}): only custom tools pass"
        elif kind == "namespace":  # Codex groups an MCP server's tools under its name
            nested = _tool_refusal(protocol, tool.get("tools", []))
            if nested:
                return f"tools[{index}] (a namespace): {nested}"
        elif kind not in _OPENAI_TOOL_TYPES:
            return f"tools[{index}] has type {kind!r}: only function and custom tools pass"
    return None


_URL_SOURCES = frozenset({"image_url", "file_url"})


def _fetched_url(node: object, where: str = "") -> str | None:
    """Where in the request a content part asks the provider to fetch a URL (an OpenAI
    `image_url` / `input_image.image_url` / `input_file.file_url` that is not a `data:` URI,
    an Anthropic `source` of type `url`), or None."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            found = _fetched_url(item, f"{where}[{index}]")
            if found:
                return found
        return None
    if not isinstance(node, dict):
        return None
    if node.get("type") == "url" and isinstance(node.get("url"), str):
        return f"{where}.url"
    for key, value in node.items():
        if key in _URL_SOURCES:
            url = value.get("url") if isinstance(value, dict) else value
            if isinstance(url, str) and not url.startswith("data:"):
                return f"{where}.{key}"
        found = _fetched_url(value, f"{where}.{key}")
        if found:
            return found
    return None


def provider_work_refusal(protocol: WireProtocol, document: dict[str, Any]) -> str | None:
    """Why the request would have the provider act on its own (see the module text), or
    None when it does not: server-side tools, stored state, and content the provider would
    fetch from a URL the caller chose (a way around the sandbox's egress rules)."""
    refusal = _tool_refusal(protocol, document.get("tools"))
    if refusal:
        return refusal
    for key in ("messages", "input", "system"):
        where = _fetched_url(document.get(key), key)
        if where:
            return (
                f"`{where}` asks the provider to fetch a URL: only inline (`data:` or "
                "base64) content passes the model gateway"
            )
    if protocol is WireProtocol.ANTHROPIC_MESSAGES:
        for key in ("mcp_servers", "container"):
            if document.get(key) is not None:
                return f"`{key}` is not allowed through the model gateway"
        return None
    if document.get("store") is True:
        return "`store: true` is not allowed through the model gateway"
    if protocol is WireProtocol.OPENAI_CHAT and document.get("web_search_options") is not None:
        return "`web_search_options` is not allowed through the model gateway"
    if protocol is WireProtocol.OPENAI_RESPONSES:
        if document.get("background") is True:
            return "`background: true` is not allowed through the model gateway"
        if document.get("prompt") is not None:
            return "a stored `prompt` is not allowed through the model gateway"
    return None
