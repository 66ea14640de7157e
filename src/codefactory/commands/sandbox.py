"""Sandbox commands: `sandbox run` (one command in a fresh sandbox), `sandbox images`.

Exit codes of `sandbox run`: the command's own, or
    124  a limit was hit (stderr names it: wall-clock, cpu, memory, processes, output,
         file-size, disk); the command was killed with its whole process tree
    125  the sandbox could not start (bubblewrap missing, the repository could not be
         provisioned, the setup phase failed, a mount or cgroup error)
"""

from __future__ import annotations

import secrets
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from codefactory.commands.common import JsonOption, console, errors, fail, print_json, state
from codefactory.terminal import shown

LIMIT_HIT = 124
CANNOT_START = 125

sandbox_app = typer.Typer(help="Run commands in a sandbox; manage pre-warmed images.")


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("run")
def run(
    command: Annotated[list[str], typer.Argument(help="The command, after `--`.")],
    repo: Annotated[Path, typer.Option(help="The git repository to sandbox.")],
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="Allow egress to HOST[:PORT] (repeatable)."),
    ] = None,
    commit: Annotated[str, typer.Option(help="The commit to provision.")] = "HEAD",
    phase: Annotated[str, typer.Option(help="engine, check or setup.")] = "engine",
    timeout: Annotated[
        float | None, typer.Option(help="Wall-clock limit in seconds.", show_default=False)
    ] = None,
    setup: Annotated[bool, typer.Option(help="Install the repository's dependencies.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Run one command in a fresh sandbox over REPO; exits with its exit code."""
    from codefactory.sandbox.backends import build_sandbox, python_interpreters
    from codefactory.sandbox.egress import EgressAttempt
    from codefactory.sandbox.errors import SandboxError
    from codefactory.sandbox.port import Phase
    from codefactory.sandbox.setup import install_dependencies

    settings = state.settings
    try:
        chosen = Phase(phase)
    except ValueError:
        fail(f"unknown phase {phase!r}: choose engine, check or setup", code=2)
    attempts: list[EgressAttempt] = []
    interpreters = (
        python_interpreters(settings.sandbox, settings.data_dir)
        if settings.sandbox.type == "bubblewrap"
        else None
    )
    run_id = f"cli-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    try:
        sandbox = build_sandbox(settings.sandbox, data_dir=settings.data_dir)
        workspace = sandbox.provision(
            repo=repo, commit=commit, run_id=run_id, on_egress=attempts.append
        )
    except SandboxError as err:
        fail(f"the sandbox could not start: {err}", code=CANNOT_START)
    try:
        if setup:
            install_dependencies(
                workspace,
                python=str(settings.sandbox.python),
                timeout_s=settings.sandbox.setup_timeout_s,
                interpreters=interpreters,
            )
        result = workspace.exec(
            command,
            phase=chosen,
            timeout_s=timeout or settings.sandbox.command_timeout_s,
            allow_hosts=allow_host or [],
        )
    except SandboxError as err:
        fail(f"the sandbox could not start: {err}", code=CANNOT_START)
    finally:
        workspace.destroy()
    code = LIMIT_HIT if result.limit_hit else result.exit_code
    if as_json:
        print_json(
            {
                "command": list(result.command),
                "exit_code": result.exit_code,
                "limit_hit": result.limit_hit,
                "duration_s": round(result.duration_s, 3),
                "stdout": result.stdout,
                "stderr": result.stderr,
                "egress": [dict(a.audit_data(), run_id=a.run_id) for a in attempts],
            }
        )
    else:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        for attempt in attempts:
            verdict = "allowed" if attempt.allowed else "denied"
            errors.print(
                f"egress {verdict}: {attempt.host}:{attempt.port} ({attempt.reason})",
                highlight=False,
            )
    if result.limit_hit:
        errors.print(f"[bold red]limit hit:[/] {result.limit_hit}", highlight=False)
    raise typer.Exit(code)


@sandbox_app.command("images")
def images(
    prune: Annotated[
        bool, typer.Option(help="Remove images no longer current and not in use.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List the cached workspace images (trees and environments); prune stale ones."""
    from codefactory.sandbox.backends import python_interpreters
    from codefactory.sandbox.images import ImageCache

    settings = state.settings
    # keyed as the sandbox keys them (the Python each repository asks for), or every image
    # built for another Python would look stale and be pruned
    cache = ImageCache(
        settings.data_dir / "images",
        python=str(settings.sandbox.python),
        interpreters=python_interpreters(settings.sandbox, settings.data_dir),
    )
    removed = cache.prune() if prune else []
    listed = cache.layers()
    if as_json:
        print_json(
            {"images": [i.as_dict() for i in listed], "removed": [i.as_dict() for i in removed]}
        )
        return
    table = Table("repository", "kind", "key", "size", "last used", "in use", "current")
    for info in listed:
        table.add_row(
            shown(info.repo),
            info.kind,
            info.key[:16],
            _size(info.size_bytes),
            f"{info.last_used:%Y-%m-%d %H:%M:%S}",
            "yes" if info.in_use else "",
            "yes" if info.current else "stale",
        )
    console.print(table)
    if prune:
        console.print(f"removed {len(removed)} stale layers", highlight=False)


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size //= 1024
    return f"{size} TiB"
