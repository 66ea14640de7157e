"""What every command shares: the settings, output consoles, errors and JSON.

Importing this module (and every command module) loads no settings model, adapter, SQLAlchemy
or HTTP client: `codefactory --help` builds its pages from the commands' signatures alone
(tests/unit/test_cli_startup.py); each command imports what it uses in its body."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from codefactory.terminal import shown

if TYPE_CHECKING:
    from codefactory.config import Settings
    from codefactory.domain import RunState
    from codefactory.factory import Factory
    from codefactory.runs.loop import RunObserver
    from codefactory.store.runs import RunStore

# Without a terminal (CI, pipes) Rich falls back to 80 columns; tables of paths need more.
console = Console() if sys.stdout.isatty() else Console(width=200)
errors = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


class CliState:
    """The global options, set by the root callback.

    `settings` is read from the environment on first use when the callback has not set it
    (the settings models are imported only then)."""

    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The settings of this invocation (`load_settings` with the `--data-dir` given)."""
        if self._settings is None:
            from codefactory.config import Settings

            self._settings = Settings()
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self._settings = value


state = CliState()


def fail(message: str, code: int = 1) -> NoReturn:
    """`message` (plain text: exceptions, stored names; shown as text, `terminal.shown`) as
    one clear line on stderr, then exit."""
    say_error(message)
    raise typer.Exit(code)


def say_error(message: str) -> None:
    """`message` as `fail` prints it, without exiting."""
    errors.print(f"[bold red]error:[/] {shown(message)}", highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """JSON for scripts on stdout, keys sorted."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def observer() -> RunObserver | None:
    """A progress printer for runs, only when a terminal is attached (no noise in CI logs)."""
    from codefactory.config import is_terminal_attached

    if not is_terminal_attached():
        return None

    def show(run_id: str, run_state: RunState, reason: str) -> None:
        colour = {
            "failed": "red",
            "refused": "yellow",
            "rejected": "yellow",
            "no_change": "green",
        }.get(run_state.value, "cyan")
        detail = f" [dim]{shown(reason)}[/]" if reason else ""  # reasons quote payload text
        console.print(
            f"  {shown(run_id)} → [{colour}]{run_state.value}[/]{detail}", highlight=False
        )

    return show


@contextmanager
def progress(message: str, *, quiet: bool = False) -> Iterator[None]:
    """A spinner on long steps when a terminal is attached."""
    from codefactory.config import is_terminal_attached

    status = (
        console.status(message, spinner="dots")
        if is_terminal_attached() and not quiet
        else nullcontext()
    )
    with status:
        yield


def build(observe: RunObserver | None = None) -> Factory:
    """The factory for the current settings (heavy imports deferred)."""
    from codefactory.factory import build_factory
    from codefactory.identity.errors import SignerUnavailable, TrustInvalid
    from codefactory.identity.four_eyes import FourEyesRefused
    from codefactory.store.db import StoreUnavailable
    from codefactory.store.urls import DatabaseUrlRefused

    try:
        return build_factory(state.settings, observer=observe)
    except (SignerUnavailable, TrustInvalid, FourEyesRefused) as err:  # fail closed, say why
        fail(f"cannot start: {err}")
    except (DatabaseUrlRefused, StoreUnavailable) as err:  # the URL shown without password
        fail(f"cannot open the store: {err}")
    except UnicodeEncodeError as err:  # `store.db.stored_text`: a byte that is not UTF-8
        fail(
            "cannot start: the store holds text that is not UTF-8, written outside the "
            f"factory, in what the factory reads to start ({err.reason})"
        )


def read_store() -> RunStore:
    """The runs repository of the current settings for commands that only read it
    (`factory.open_store`: the database and the stored audit events, no adapter built)."""
    from codefactory.factory import open_store
    from codefactory.store.db import StoreUnavailable
    from codefactory.store.urls import DatabaseUrlRefused

    try:
        return open_store(state.settings)
    except (DatabaseUrlRefused, StoreUnavailable) as err:  # the URL shown without password
        fail(f"cannot open the store: {err}")
