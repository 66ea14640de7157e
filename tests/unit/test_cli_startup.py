"""The CLI's start-up (issue 15, "CLI start-up"): loading the command line and printing its
help import no settings model, adapter, database, HTTP or crypto library; each command
imports what it uses in its body. Each check runs in a fresh interpreter, since this test
process has long imported everything."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "alembic", "httpx", "cryptography", "pydantic_ai")
"""Top-level packages `--help` must not load (each costs tens of milliseconds or more)."""


def loaded_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running `code`, sorted."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return list(json.loads(result.stdout.splitlines()[-1]))


def heavy(modules: list[str]) -> list[str]:
    return [name for name in modules if name.split(".")[0] in HEAVY]


def test_importing_the_command_line_loads_no_heavy_module() -> None:
    modules = loaded_after("import codefactory.cli")
    assert heavy(modules) == []
    assert "codefactory.config" not in modules  # the settings models: only when a command runs
    assert "pydantic" not in modules
    project = {m for m in modules if m.startswith("codefactory.")}
    assert {m for m in project if not m.startswith("codefactory.commands")} == {
        "codefactory.cli",
        "codefactory.hosts",  # `mcp serve --host`'s check: the standard library alone
    }


def test_help_is_built_from_signatures_alone() -> None:
    help_run = """
import sys
from codefactory.cli import app
sys.argv = ["codefactory", "--help"]
try:
    app()
except SystemExit as done:
    assert done.code == 0, done.code
"""
    modules = loaded_after(help_run)
    assert heavy(modules) == []
    assert "codefactory.config" not in modules
    assert "codefactory.factory" not in modules


def test_the_help_lists_every_command_group() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from codefactory.cli import app; app()", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for group in ("trigger", "runs", "review", "audit", "serve", "witness", "forge", "mcp"):
        assert group in result.stdout
