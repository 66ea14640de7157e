"""`codefactory mcp serve --stdio`: a third-party MCP client (the `mcp` SDK's stdio client)
starts the command itself and reads one run's context through it, governed as the engine's
reads are (the run's recipe engine is cleared for every class)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.acceptance.conftest import CLI, TEMPLATE, Cli
from tests.acceptance.test_run_outcomes import audit_events
from tests.conftest import sample_service


def test_a_stdio_client_lists_and_reads_a_runs_sources(cli: Cli, tmp_path: Path) -> None:
    # a bump whose pin is already safe: a run that ends quickly, with a checkout and an engine
    repo = sample_service(tmp_path / "sample-service", **{"requirements.txt": "idna==3.7\n"})
    ticket = TEMPLATE / "tickets" / "SVC-101.json"
    cli("trigger", "--repo", str(repo), "--ticket", str(ticket), check=True)
    (run,) = cli.json("runs", "list")
    server = StdioServerParameters(
        command=str(CLI),
        args=["--data-dir", str(cli.data_dir), "mcp", "serve", "--run", run["id"], "--stdio"],
        env=dict(cli.env),
    )

    async def session() -> tuple[list[str], Any, Any]:
        async with Client(server) as client:
            tools = sorted(tool.name for tool in (await client.list_tools()).tools)
            found = await client.call_tool("repository_search", {"query": "callback_allowed"})
            escape = await client.call_tool("repository_fetch", {"ref": "/etc/passwd"})
            return tools, found, escape

    tools, found, escape = anyio.run(session)
    assert tools == ["repository_fetch", "repository_search"]  # no vendor source configured
    assert not found.is_error and "service/callbacks.py" in found.content[0].text
    assert escape.is_error and "out-of-scope" in escape.content[0].text
    events = audit_events(cli, run["id"])
    reads = [e for e in events if str(e["name"]).startswith("context-read")]
    assert [(e["data"]["operation"], e["data"]["reader"]) for e in reads][-2:] == [  # type: ignore[index]
        ("search", "mcp"),
        ("fetch", "mcp"),
    ]
    assert any(e["name"] == "mcp-serve-started" for e in events)


def test_serving_over_plain_http_beyond_this_host_is_refused(cli: Cli) -> None:
    result = cli("mcp", "serve", "--run", "r-any", "--host", "0.0.0.0")
    assert result.returncode == 1
    assert "not a loopback address" in result.stderr + result.stdout
