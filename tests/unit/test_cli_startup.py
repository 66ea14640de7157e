"""The CLI's start-up (issue 15, "CLI start-up"): loading the command line and printing its
help import no settings model, adapter, database, HTTP or crypto library; each command
imports what it uses in its body. Each check runs in a fresh interpreter, since this test
process has long imported everything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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
        "codefactory.terminal",  # stored text made inert for the terminal: Rich's markup
    }


def test_loading_the_settings_loads_no_crypto_library() -> None:
    modules = loaded_after("import codefactory.config")
    assert "codefactory.audit.cosignature" not in modules  # only when a witness key is read
    assert "cryptography" not in modules


def test_runs_list_loads_no_masking_nor_audit_event_type(tmp_path: Path) -> None:
    """`runs list` reads the store: no Presidio, spaCy or detect-secrets, no audit event
    types (`store.runs` imports them in the writes that append them), no witness keys.
    (`cryptography` it still loads: the audit log's reader, `audit.sql`, imports
    `audit.note` at module level.)"""
    runs_list = f"""
import sys
from codefactory.cli import app
sys.argv = ["codefactory", "--data-dir", {str(tmp_path / "data")!r}, "runs", "list"]
try:
    app()
except SystemExit as done:
    assert done.code in (0, None), done.code
"""
    modules = loaded_after(runs_list)
    assert "codefactory.store.runs" in modules  # it did read the store
    top = {name.split(".")[0] for name in modules}
    assert top.isdisjoint({"presidio_analyzer", "spacy", "thinc", "numpy", "detect_secrets"})
    assert not [m for m in modules if m.startswith("codefactory.audit.events")]
    assert "codefactory.audit.cosignature" not in modules
    assert "codefactory.context.masking" not in modules


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
    assert rich_pages(modules) == []


RICH_PAGES = ("typer.rich_utils", "rich.markdown", "rich.syntax", "rich.traceback")
"""Typer's Rich help and error pages and what they load: some 50 ms per start."""


def rich_pages(modules: list[str]) -> list[str]:
    return [name for name in modules if name in RICH_PAGES]


def test_every_help_page_and_usage_error_is_plain() -> None:
    """Every group's help and a usage error are Click's plain pages, not Typer's Rich ones
    (the root's `rich_markup_mode=None`, handed down to every group by Typer)."""
    from codefactory.cli import app

    for argv in (
        *[[group.name or "", "--help"] for group in app.registered_groups],
        ["no-such-command"],
        ["runs", "list", "--no-such-option"],
    ):
        script = f"""
import sys
from codefactory.cli import app
sys.argv = ["codefactory", *{argv!r}]
try:
    app()
except SystemExit as done:
    assert done.code in (0, 2), done.code
"""
        assert rich_pages(loaded_after(script)) == [], argv


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


def test_the_command_word_skips_the_global_options() -> None:
    from codefactory.cli import command_word

    assert command_word(["runs", "list"]) == "runs"
    assert command_word(["--data-dir", "/d", "runs", "list"]) == "runs"
    assert command_word(["--data-dir=/d", "trigger", "--repo", "r"]) == "trigger"
    assert command_word(["--data-dir", "runs"]) is None  # `runs` is the folder here
    assert command_word(["--help", "runs"]) is None  # the root's help lists every command
    assert command_word([]) is None


def test_a_process_builds_only_the_command_it_runs() -> None:
    import typer.main

    from codefactory.cli import app

    built = typer.main.get_command(app.narrowed(["--data-dir", "/d", "runs", "list"]))
    assert isinstance(built, typer.core.TyperGroup)
    assert sorted(built.commands) == ["runs"]
    assert sorted(built.params[0].opts) == ["--data-dir"]  # the global options are kept
    trigger = typer.main.get_command(app.narrowed(["trigger", "--repo", "r"]))
    assert isinstance(trigger, typer.core.TyperGroup)
    assert sorted(trigger.commands) == ["trigger"]
    everything = typer.main.get_command(app)
    assert isinstance(everything, typer.core.TyperGroup)
    assert app.narrowed(["--help"]) is app
    assert app.narrowed(["no-such-command"]) is app  # Click names it and lists the others


def test_every_command_narrows_to_itself() -> None:
    """Each command's Click command is the same whether the process built one or all."""
    import typer.main

    from codefactory.cli import app

    everything = typer.main.get_command(app)
    assert isinstance(everything, typer.core.TyperGroup)
    assert len(everything.commands) > 20
    for name, command in everything.commands.items():
        alone = typer.main.get_command(app.narrowed(["--data-dir", "/d", name, "--help"]))
        assert isinstance(alone, typer.core.TyperGroup)
        assert list(alone.commands) == [name]
        assert shape(alone.commands[name]) == shape(command)


def shape(command: Any) -> tuple[Any, ...]:
    """A Click command's help, options and arguments, and its subcommands' shapes."""
    params = [(p.name, tuple(getattr(p, "opts", ()))) for p in command.params]
    subcommands = getattr(command, "commands", {})
    return command.help, params, {n: shape(c) for n, c in sorted(subcommands.items())}


def test_a_narrowed_command_runs_from_the_console_script() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from codefactory.cli import app; app()", "runs", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "list" in result.stdout and "show" in result.stdout
