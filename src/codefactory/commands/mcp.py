"""`codefactory mcp serve`: one run's context engine over the Model Context Protocol.

The run's engine reaches its context through the gateway's listener while it runs; this
command serves a run's context on its own, for an MCP client of the bank's choosing: over
streamable HTTP on this host (bearer: a fresh credential, written to `--token-file`), or over
stdio (`--stdio`) for a client that starts this command itself. Reads are decided by policy
for the run's sponsor and engine, masked and audited exactly as the engine's.
"""

from __future__ import annotations

import os
import pwd
import secrets
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from codefactory.commands.common import build, console, fail
from codefactory.hosts import is_loopback

if TYPE_CHECKING:
    from codefactory.context.runs import RunContexts

mcp_app = typer.Typer(
    help="The context engine over the Model Context Protocol.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(mcp_app, name="mcp")


@mcp_app.command("serve")
def mcp_serve(
    run_id: Annotated[str, typer.Option("--run", help="The run whose context to serve.")],
    stdio: Annotated[
        bool, typer.Option("--stdio", help="Serve over stdin/stdout instead of HTTP.")
    ] = False,
    host: Annotated[str, typer.Option(help="Address to listen on (HTTP).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 0,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="Write the bearer credential here (0600); without it, it is printed once.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the run's allowed sources as MCP tools (`<source>_search`, `<source>_fetch`)
    until interrupted. The repository is read from a fresh sandbox at the run's base commit."""
    import anyio

    from codefactory.audit.events import McpServeStarted
    from codefactory.context.mcp_server import serve_stdio

    if not stdio and not is_loopback(host):
        fail(
            f"--host {host} is not a loopback address: mcp serve speaks plain HTTP, so the "
            "bearer and the context would cross the network unencrypted (use 127.0.0.1 or ::1)"
        )
    factory = build()
    run = factory.store.get_run(run_id)
    if run is None:
        fail(f"no run {run_id}")
    context_engine = factory.loop.context
    if context_engine is None:
        fail("this factory has no context engine")
    if not run.repository_path or not run.engine:
        fail(f"run {run_id} records no checkout or no engine: nothing to serve")
    workspace = factory.loop.sandbox.provision(
        repo=Path(run.repository_path),
        commit=run.base_commit or "HEAD",
        run_id=f"{run.id}-mcp-{secrets.token_hex(3)}",
    )
    runs: RunContexts = context_engine.runs  # type: ignore[attr-defined]
    person = f"unix:{pwd.getpwuid(os.getuid()).pw_name}"
    try:
        context_engine.open(run, run.engine, workspace, actor=person)
        with factory.store.atomic() as tx:
            tx.append(
                McpServeStarted(
                    actor=person,
                    run_id=run.id,
                    transport="stdio" if stdio else "http",
                    address="" if stdio else f"{host}:{port}",
                    engine=run.engine,
                )
            )
        if stdio:
            anyio.run(serve_stdio, runs, run.id)
        else:
            _serve_http(runs, run.id, host, port, token_file)
    finally:
        context_engine.close(run.id)
        workspace.destroy()


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` as a new 0600 file (a link is never followed, an existing
    file's mode never kept): written beside it, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _serve_http(
    runs: RunContexts, run_id: str, host: str, port: int, token_file: Path | None
) -> None:
    import hmac

    import uvicorn

    from codefactory.context.mcp_server import MCP_PATH, context_http_app

    credential = "cfm-" + secrets.token_urlsafe(32)

    def run_of(token: str) -> str | None:
        return run_id if hmac.compare_digest(token, credential) else None

    listener = socket.create_server((host, port))
    bound = int(listener.getsockname()[1])
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}"
    app = context_http_app(
        runs, run_of, public_url=url, hosts=[f"{shown}:{bound}", f"localhost:{bound}"]
    )
    if token_file is not None:
        _write_private(token_file, credential + "\n")
        console.print(f"mcp {url}{MCP_PATH} (bearer in {token_file})", highlight=False)
    else:
        console.print(f"mcp {url}{MCP_PATH} bearer {credential}", highlight=False)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[listener])
