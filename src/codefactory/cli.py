"""The `codefactory` command: the root app, its global options, and the command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codefactory.commands import (
    advisories,
    audit,
    engines,
    forge,
    halt,
    identity,
    login,
    mcp,
    policy,
    review,
    runs,
    sandbox,
    serve,
    verify,
    witness,
)
from codefactory.commands.common import state

app = typer.Typer(
    help="Code Factory: a governed harness for background coding agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="Data folder (database, packages, forge).", show_default=False
        ),
    ] = None,
) -> None:
    """Global options."""
    from codefactory.config import load_settings  # not for `--help`: the settings models

    state.settings = load_settings(data_dir)


for group in (runs, review, audit, serve, sandbox, identity, policy, advisories, verify, engines):
    group.register(app)
login.register(app)
halt.register(app)
forge.register(app)
mcp.register(app)
witness.register(app)
