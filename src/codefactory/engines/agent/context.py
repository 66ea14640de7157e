"""The agent's context toolset: the run's context engine over MCP (pydantic-ai's
`MCPToolset`, streamable HTTP) on the gateway's listener, authenticated by the run's
credential. The server decides, masks and audits each read (`context/mcp_server.py`); the
tools it lists are the sources policy lets this run read (`jira_search`, `sentry_fetch`...).
"""

from __future__ import annotations

import ssl
from typing import Any

from pydantic_ai.mcp import MCPToolset
from pydantic_ai.toolsets import AbstractToolset

from codefactory.engines.session import EngineSession

MCP_PATH = "/mcp"


def context_toolsets(session: EngineSession) -> list[AbstractToolset[Any]]:
    """The MCP toolset of the session's run, or none (no model access, or no context)."""
    if not session.context_tools or session.model is None:
        return []
    access = session.model
    return [
        MCPToolset(
            access.in_process_url + MCP_PATH,
            id="codefactory-context",
            auth=access.credential,
            verify=ssl.create_default_context(cafile=str(access.ca_file)),
            tool_error_behavior="failed",
            include_instructions=False,
        )
    ]
