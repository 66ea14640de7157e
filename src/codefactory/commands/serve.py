"""`codefactory serve`: the web app (runs API, dashboard)."""

from __future__ import annotations

import typer

from codefactory.commands.common import build, console


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.command()(serve)


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the web app (runs API and dashboard)."""
    serve_app(host, port)


def serve_app(host: str, port: int) -> None:
    """Serve the app for the current settings until interrupted."""
    import uvicorn

    from codefactory.web.app import create_app

    console.print(f"serving on http://{host}:{port} (Ctrl-C to stop)", highlight=False)
    uvicorn.run(create_app(build()), host=host, port=port, log_level="warning")
