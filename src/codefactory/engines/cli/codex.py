"""Codex CLI (`@openai/codex`): `codex exec --json`, a custom provider speaking Responses.

The built-in OpenAI provider's URL cannot be overridden, so `$CODEX_HOME/config.toml` names a
provider of ours: the gateway's `/v1` with `wire_api = "responses"` and the credential's
variable (`env_key`). Its own sandbox (bubblewrap, seccomp) cannot start inside ours: it runs
with `--dangerously-bypass-approvals-and-sandbox`; the sandbox is ours.

Events (`codex exec --json`, one JSON object a line): `thread.started`, `turn.started`,
`item.started|updated|completed` (items `agent_message`, `reasoning`, `command_execution`,
`file_change`, ...), `turn.completed` (with usage) or `turn.failed`, and `error`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from codefactory.engines.cli.adapter import (
    HOME_DIR,
    IMAGE_DIR,
    KEY_VARIABLE,
    NODE_ARCH,
    Launch,
    StreamReading,
    json_lines,
    status_in,
)
from codefactory.engines.cli.image import NODE, ImageRecipe
from codefactory.engines.cli.mcp_config import codex_mcp_table
from codefactory.engines.session import ModelAccess

ENTRY = "node_modules/@openai/codex/bin/codex.js"
QUOTA_EXCEEDED = "Quota exceeded."


class CodexAdapter:
    """`cli:codex`."""

    name = "codex"
    protocol = "openai-responses"
    stream_name = "codex.jsonl"
    recipe = ImageRecipe(
        name="codex",
        kind="npm",
        package="@openai/codex",
        version="0.169.0",
        entry=(ENTRY, f"node_modules/@openai/codex-linux-{NODE_ARCH}"),
    )

    def launch(
        self,
        prompt: str,
        model: ModelAccess,
        allowed_tools: Sequence[str],
        *,
        context_mcp: bool = False,
    ) -> Launch:
        """`codex exec` with the gateway as its only provider; `allowed_tools` is not
        expressible on its command line (its tools are a shell and a patch tool)."""
        command = (
            NODE, f"{IMAGE_DIR}/{ENTRY}", "exec", "--json", "--skip-git-repo-check",
            "--ephemeral", "--dangerously-bypass-approvals-and-sandbox", "--color", "never",
            "-m", model.model, prompt,
        )  # fmt: skip
        return Launch(
            command=command,
            env={"CODEX_HOME": f"{HOME_DIR}/.codex", KEY_VARIABLE: model.credential},
            home_files={".codex/config.toml": config_toml(model, context_mcp=context_mcp)},
        )

    def read(self, stream: bytes) -> StreamReading:
        """The last `agent_message` is the final message once `turn.completed` is seen."""
        events, garbage = 0, []
        message, completed, error = "", False, ""
        counts: dict[str, int] = {}
        usage: dict[str, Any] = {}
        for event in json_lines(stream):
            if isinstance(event, str):
                garbage.append(event)
                continue
            events += 1
            kind = str(event.get("type", ""))
            item = event.get("item") if isinstance(event.get("item"), dict) else {}
            if kind == "item.completed" and isinstance(item, dict):
                item_type = str(item.get("type", ""))
                counts[item_type] = counts.get(item_type, 0) + 1
                if item_type == "agent_message":
                    message = str(item.get("text", ""))
            elif kind == "turn.completed":
                completed = True
                found = event.get("usage")
                usage = found if isinstance(found, dict) else {}
            elif kind in ("turn.failed", "error"):
                error = _error_text(event) or error
        return StreamReading(
            final_message=message if completed and not error else None,
            events=events,
            garbage=tuple(garbage),
            error=error,
            http_status=_status(error) if error else None,
            details={"items": counts, "usage": usage},
        )


def config_toml(model: ModelAccess, *, context_mcp: bool = False) -> str:
    """`$CODEX_HOME/config.toml`: the gateway as the one provider, no retries of its own
    (the gateway retries within the run's budget), nothing sent elsewhere; with
    `context_mcp`, the run's context engine as its one MCP server."""
    lines = [
        f"model = {json.dumps(model.model)}",
        'model_provider = "codefactory"',
        'approval_policy = "never"',
        'sandbox_mode = "danger-full-access"',
        "check_for_update_on_startup = false",
        'web_search = "disabled"',
        "",
        "[features]",
        "multi_agent = false",
        "",
        "[model_providers.codefactory]",
        'name = "Code Factory model gateway"',
        f"base_url = {json.dumps(model.base_url.rstrip('/') + '/v1')}",
        f"env_key = {json.dumps(KEY_VARIABLE)}",
        'wire_api = "responses"',
        "request_max_retries = 0",
        "stream_max_retries = 0",
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[feedback]",
        "enabled = false",
        "",
    ]
    return "\n".join(lines) + (codex_mcp_table(model) if context_mcp else "")


def _status(error: str) -> int | None:
    # Codex words OpenAI's `insufficient_quota` (a 429: the gateway's spent budget) as this
    # phrase and drops the status
    return 429 if error.startswith(QUOTA_EXCEEDED) else status_in(error)


def _error_text(event: dict[str, Any]) -> str:
    error = event.get("error")
    if isinstance(error, dict):
        return str(error.get("message", "")) or json.dumps(error)
    return str(event.get("message", "")) or json.dumps(event)[:500]
