"""The `codefactory` command: the root app, its global options, and the command groups."""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main

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
from codefactory.commands.common import say_error, state

GLOBAL_OPTIONS_WITH_VALUE = frozenset({"--data-dir"})
"""The root's options that take a value (the word after them is not a command)."""


def command_word(argv: Sequence[str]) -> str | None:
    """The command `argv` (the arguments after the program name) runs: its first word that
    is not a global option or its value; None when there is none, or when another option
    (`--help`, `--install-completion`, a typo) comes first and the root must answer."""
    words = iter(argv)
    for word in words:
        if word in GLOBAL_OPTIONS_WITH_VALUE:
            next(words, None)
        elif word.split("=", 1)[0] in GLOBAL_OPTIONS_WITH_VALUE:
            continue
        elif word.startswith("-"):
            return None
        else:
            return word
    return None


class CommandLine(typer.Typer):
    """The root app. A process builds the Click command of the one command it runs (Typer
    otherwise turns all of them, some sixty, into Click commands on every start, tens of
    milliseconds); the root's own help, completion and unknown commands get every one.
    `typer.main.get_command(app)` (what `typer.testing.CliRunner` calls) builds them all."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line (`sys.argv[1:]`, or `args=` as Click takes it)."""
        argv = kwargs.get("args", args[0] if args else None)
        chosen = self.narrowed(sys.argv[1:] if argv is None else list(argv))
        try:
            return typer.Typer.__call__(chosen, *args, **kwargs)
        except Exception as err:
            from codefactory.audit.errors import EventNotRecordable  # not loaded to start

            if not isinstance(err, EventNotRecordable):
                raise
            # its own transaction rolled back; a step committed before it stays
            say_error(f"{err}; the command stopped there: what it records was not done")
            raise SystemExit(1) from None

    def narrowed(self, argv: Sequence[str]) -> typer.Typer:
        """This app with only the command or group `argv` runs registered (the global
        options kept); this app itself when `argv` names none of them."""
        word = command_word(argv)
        commands = [c for c in self.registered_commands if _name(c) == word]
        groups = [g for g in self.registered_groups if g.name == word]
        if not commands and not groups:
            return self
        chosen = copy.copy(self)
        chosen.registered_commands, chosen.registered_groups = commands, groups
        return chosen


def _name(command: typer.models.CommandInfo) -> str:
    """The command's name as Typer gives it (`typer.main.get_command_from_info`)."""
    callback = command.callback
    return command.name or typer.main.get_command_name(getattr(callback, "__name__", ""))


app = CommandLine(
    help="Code Factory: a governed harness for background coding agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Help pages and usage errors are Click's plain text, for every group (Typer hands the
    # root's mode down): Typer's Rich pages load Rich's Markdown, syntax and traceback
    # renderers on each `--help`, some 50 ms of the 200 ms it may take (bench_cli.py).
    rich_markup_mode=None,
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
