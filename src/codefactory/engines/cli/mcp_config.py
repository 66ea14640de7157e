"""The run's context engine as each agent CLI configures an MCP server.

The endpoint is the gateway's listener at `/mcp` (the one host the engine phase may reach),
over the same TLS and authenticated by the same run credential as the model: Claude Code
reads `--mcp-config` (with `--strict-mcp-config`, a repository's `.mcp.json` never applies),
Codex `[mcp_servers.<name>]` in `$CODEX_HOME/config.toml`, opencode the `mcp` object of its
config. mini-swe-agent has no MCP client: it gets the gathered context in its task only.
"""

from __future__ import annotations

import json

from codefactory.engines.cli.adapter import KEY_VARIABLE
from codefactory.engines.session import ModelAccess

SERVER_NAME = "codefactory-context"
MCP_PATH = "/mcp"


def context_url(model: ModelAccess) -> str:
    """`https://<gateway host>:<port>/mcp`, as the sandbox reaches it."""
    return model.base_url.rstrip("/") + MCP_PATH


def claude_mcp_config(model: ModelAccess) -> str:
    """The `--mcp-config` file for Claude Code (`type: http`, bearer header)."""
    server = {
        "type": "http",
        "url": context_url(model),
        "headers": {"Authorization": f"Bearer {model.credential}"},
    }
    return json.dumps({"mcpServers": {SERVER_NAME: server}}, indent=2)


def codex_mcp_table(model: ModelAccess) -> str:
    """Codex's `[mcp_servers.codefactory-context]` table (streamable HTTP, the bearer token
    read from `CODEFACTORY_MODEL_KEY`)."""
    return "\n".join(
        [
            f'[mcp_servers."{SERVER_NAME}"]',
            f"url = {json.dumps(context_url(model))}",
            f"bearer_token_env_var = {json.dumps(KEY_VARIABLE)}",
            "",
        ]
    )


def opencode_mcp(model: ModelAccess) -> dict[str, object]:
    """opencode's `mcp` object: one remote server, the key from the environment."""
    return {
        SERVER_NAME: {
            "type": "remote",
            "url": context_url(model),
            "headers": {"Authorization": "Bearer {env:" + KEY_VARIABLE + "}"},
            "enabled": True,
        }
    }
