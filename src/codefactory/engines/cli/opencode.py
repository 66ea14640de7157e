"""opencode (`opencode-ai`): `opencode run --format json`, a provider of ours in its config.

The npm package's launcher is a stub its postinstall script replaces; `--ignore-scripts`
skips that, so the engine runs the native (Bun) binary of the platform package directly. The
gateway is an `@ai-sdk/openai-compatible` provider in the file `OPENCODE_CONFIG` names
(`options.baseURL`, the key from the environment), with permissions granted in the config
since no one is there to answer a prompt.

Events (one JSON object a line): `step_start`, `text`, `tool_use`, `step_finish` (with the
finish reason and tokens), each carrying a `part`, and `error` (`error.data.statusCode`).
It retries a 429 itself for about 75 s, though the gateway says `x-should-retry: false`.
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
from codefactory.engines.cli.image import ImageRecipe
from codefactory.engines.cli.mcp_config import opencode_mcp
from codefactory.engines.session import ModelAccess

BINARY = f"node_modules/opencode-linux-{NODE_ARCH}/bin/opencode"
PROVIDER = "codefactory"
CONFIG = ".config/opencode/codefactory.json"


class OpencodeAdapter:
    """`cli:opencode`."""

    name = "opencode"
    protocol = "openai-chat"
    stream_name = "opencode.jsonl"
    recipe = ImageRecipe(
        name="opencode", kind="npm", package="opencode-ai", version="1.18.33", entry=(BINARY,)
    )

    def launch(
        self,
        prompt: str,
        model: ModelAccess,
        allowed_tools: Sequence[str],
        *,
        context_mcp: bool = False,
    ) -> Launch:
        """`opencode run`; its permissions come from the config, not `allowed_tools`."""
        command = (
            f"{IMAGE_DIR}/{BINARY}", "run", "--format", "json",
            "-m", f"{PROVIDER}/{model.model}", prompt,
        )  # fmt: skip
        env = {
            "OPENCODE_CONFIG": f"{HOME_DIR}/{CONFIG}",
            KEY_VARIABLE: model.credential,
            "OPENCODE_DISABLE_AUTOUPDATE": "true",
            "OPENCODE_DISABLE_SHARE": "true",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "true",
            "OPENCODE_DISABLE_MODELS_FETCH": "true",
            # a repository's opencode.json / .opencode/ (providers, plugins) never applies
            "OPENCODE_DISABLE_PROJECT_CONFIG": "true",
        }
        config = config_json(model, context_mcp=context_mcp)
        return Launch(command=command, env=env, home_files={CONFIG: config})

    def read(self, stream: bytes) -> StreamReading:
        """The text after the last tool call is the final message, once a step finished with
        a reason other than a tool call."""
        events, garbage = 0, []
        texts: list[str] = []
        finished, error, tools = False, "", 0
        status: int | None = None
        for event in json_lines(stream):
            if isinstance(event, str):
                garbage.append(event)
                continue
            events += 1
            kind = event.get("type")
            part = event.get("part") if isinstance(event.get("part"), dict) else {}
            if kind == "text" and isinstance(part, dict):
                texts.append(str(part.get("text", "")))
            elif kind == "tool_use":
                tools, texts = tools + 1, []
            elif kind == "step_finish" and isinstance(part, dict):
                finished = part.get("reason") not in ("tool-calls", "tool_calls")
            elif kind == "error":
                error, status = _error_text(event), _status_code(event)
        return StreamReading(
            final_message="".join(texts).strip() if finished and not error else None,
            events=events,
            garbage=tuple(garbage),
            error=error,
            http_status=status or (status_in(error) if error else None),
            details={"tool_uses": tools},
        )


def config_json(model: ModelAccess, *, context_mcp: bool = False) -> str:
    """The gateway as the one provider; every tool allowed but the web; no sharing; with
    `context_mcp`, the run's context engine as its one MCP server."""
    config: dict[str, object] = {
        "$schema": "https://opencode.ai/config.json",
        "model": f"{PROVIDER}/{model.model}",
        "autoupdate": False,
        "share": "disabled",
        "provider": {
            PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Code Factory model gateway",
                "options": {
                    "baseURL": model.base_url.rstrip("/") + "/v1",
                    "apiKey": "{env:" + KEY_VARIABLE + "}",
                },
                "models": {model.model: {"name": model.model}},
            }
        },
        "permission": {"edit": "allow", "bash": "allow", "webfetch": "deny"},
    }
    if context_mcp:
        config["mcp"] = opencode_mcp(model)
    return json.dumps(config, indent=2)


def _status_code(event: dict[str, Any]) -> int | None:
    """`error.data.statusCode`: the HTTP status of the model call that failed."""
    error = event.get("error")
    data = error.get("data") if isinstance(error, dict) else None
    code = data.get("statusCode") if isinstance(data, dict) else None
    return code if isinstance(code, int) else None


def _error_text(event: dict[str, Any]) -> str:
    error = event.get("error")
    if isinstance(error, dict):
        data = error.get("data")
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
        return str(error.get("message", "")) or json.dumps(error)[:500]
    return json.dumps(event)[:500]
