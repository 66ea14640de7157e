"""Claude Code (`@anthropic-ai/claude-code`): `claude -p --output-format stream-json`.

The npm package's launcher is replaced by the native binary in a postinstall script, which
`--ignore-scripts` skips: the package's own fallback, `cli-wrapper.cjs`, runs the native
binary of the platform package under the host's Node.js. It speaks Anthropic Messages to
`ANTHROPIC_BASE_URL` (no `/v1`) with `ANTHROPIC_API_KEY` as `x-api-key`, and with
`CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1` tries no other host.

Events (one JSON object a line): `system` (`init`: tools, model), `assistant` and `user`
messages (tool uses and their results), `stream_event` with partial messages, and last one
`result` (`subtype` `success` or `error_*`, `is_error`, `result`: the final text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codefactory.engines.cli.adapter import (
    HOME_DIR,
    IMAGE_DIR,
    NODE_ARCH,
    Launch,
    StreamReading,
    json_lines,
    status_in,
)
from codefactory.engines.cli.image import NODE, ImageRecipe
from codefactory.engines.cli.mcp_config import SERVER_NAME, claude_mcp_config
from codefactory.engines.session import ModelAccess

ENTRY = "node_modules/@anthropic-ai/claude-code/cli-wrapper.cjs"
DEFAULT_TOOLS = ("Bash", "Edit", "Write", "Read", "Glob", "Grep")
MCP_FILE = ".codefactory-mcp.json"


class ClaudeCodeAdapter:
    """`cli:claude-code`."""

    name = "claude-code"
    protocol = "anthropic-messages"
    stream_name = "claude-code.jsonl"
    recipe = ImageRecipe(
        name="claude-code",
        kind="npm",
        package="@anthropic-ai/claude-code",
        version="2.1.328",
        entry=(ENTRY, f"node_modules/@anthropic-ai/claude-code-linux-{NODE_ARCH}/claude"),
    )

    def launch(
        self,
        prompt: str,
        model: ModelAccess,
        allowed_tools: Sequence[str],
        *,
        context_mcp: bool = False,
    ) -> Launch:
        """Print mode; only `allowed_tools` (default `DEFAULT_TOOLS`) exist (`--tools`) and run
        without a prompt; settings come from the kit's HOME only, never the repository."""
        tools = ",".join(allowed_tools or DEFAULT_TOOLS)
        allowed = f"{tools},mcp__{SERVER_NAME}" if context_mcp else tools
        mcp = ("--mcp-config", f"{HOME_DIR}/{MCP_FILE}") if context_mcp else ()
        command = (
            NODE, f"{IMAGE_DIR}/{ENTRY}", "-p", prompt, "--output-format", "stream-json",
            "--verbose", "--tools", tools, "--allowedTools", allowed, "--no-session-persistence",
            *mcp,
            # only the kit's own settings in HOME: a repository's .claude/settings.json (hooks,
            # env, permissions) or .mcp.json must never configure the engine
            "--setting-sources", "user", "--strict-mcp-config",
            "--model", model.model,
        )  # fmt: skip
        env = {
            "ANTHROPIC_BASE_URL": model.base_url.rstrip("/"),
            "ANTHROPIC_API_KEY": model.credential,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",  # the gateway retries within the run's budget
            "IS_SANDBOX": "1",
        }
        files = {MCP_FILE: claude_mcp_config(model)} if context_mcp else {}
        return Launch(command=command, env=env, home_files=files)

    def read(self, stream: bytes) -> StreamReading:
        """The `result` event's text is the final message, unless it reports an error."""
        events, garbage = 0, []
        result: dict[str, Any] | None = None
        tool_uses = 0
        for event in json_lines(stream):
            if isinstance(event, str):
                garbage.append(event)
                continue
            events += 1
            if event.get("type") == "result":
                result = event
            elif event.get("type") == "assistant":
                tool_uses += _tool_uses(event)
        if result is None:
            return StreamReading(final_message=None, events=events, garbage=tuple(garbage))
        text = str(result.get("result", ""))
        failed = bool(result.get("is_error")) or result.get("subtype") != "success"
        error = (text or str(result.get("subtype", "error"))) if failed else ""
        return StreamReading(
            final_message=None if failed else text,
            events=events,
            garbage=tuple(garbage),
            error=error,
            http_status=status_in(error) if error else None,
            details={
                "tool_uses": tool_uses,
                "turns": result.get("num_turns"),
                "usage": result.get("usage", {}),
            },
        )


def _tool_uses(event: dict[str, Any]) -> int:
    message = event.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return 0
    return sum(
        1 for block in content if isinstance(block, dict) and block.get("type") == "tool_use"
    )
