"""The repository config's `[setup] commands` (`.codefactory/config.toml`), as SCA sees them.

The setup phase runs each line with a shell. A line that is a plain `pip install` (or
`python -m pip install`, `uv pip install`) of literal arguments, with nothing the shell
would expand or chain, is read as pip reads its arguments, so its pins are judged. Any other
line may install anything: it is an `Unpinned` entry of kind `setup-command` ("setup command
… installs what SCA cannot see"), counted in the check's summary. It is not `Unreadable`:
an unreadable spot blocks every change that edits its file, and a command that installs
nothing (`make assets`) is not a defect to fix. A config that does not parse is not run by
the setup phase (`projects.detect`), so it installs nothing and yields nothing here.
"""

from __future__ import annotations

import json
import re
import shlex

from codefactory.advisories.declared import Declared
from codefactory.advisories.model import Unpinned
from codefactory.advisories.testenvs import install_arguments
from codefactory.projects.config import CONFIG_PATH, RepositoryConfigInvalid, parse_config

SETUP_COMMAND = "setup-command"
"""The `Unpinned.kind` of a setup command whose installs cannot be read."""
_SHELL = re.compile(r"[;&|<>()$`\\\n*?{}]")
_PIP = (("pip", "install"), ("pip3", "install"), ("python", "-m", "pip", "install"),
        ("python3", "-m", "pip", "install"), ("uv", "pip", "install"))  # fmt: skip


def is_repository_config(path: str) -> bool:
    """Whether `path` is the repository config (only the one at the root is read)."""
    return path == CONFIG_PATH


def parse_setup_commands(path: str, text: str) -> Declared:
    """The pins of the plain `pip install` lines of `[setup] commands`, and one `Unpinned`
    `setup-command` entry for each other line; lines are those of the TOML text."""
    found = Declared()
    try:
        config = parse_config(text.encode())
    except RepositoryConfigInvalid:
        return found
    lines = text.splitlines()
    for command in config.setup:
        line = _line_of(command, lines)
        words = _plain(command)
        prefix = next((p for p in _PIP if words and tuple(words[: len(p)]) == p), None)
        if words is None or prefix is None:
            what = f"setup command {command!r} installs what SCA cannot see"
            found.unpinned.append(
                Unpinned(file=path, line=line, requirement=what, kind=SETUP_COMMAND)
            )
            continue
        install_arguments(found, path, [(line, word) for word in words[len(prefix) :]])
    return found


def _plain(command: str) -> list[str] | None:
    """The words of a command the shell runs as written (no expansion, chaining or
    redirection), else None."""
    if _SHELL.search(command) is not None:
        return None
    try:
        return shlex.split(command)
    except ValueError:
        return None


def _line_of(command: str, lines: list[str]) -> int:
    """The 1-based line the command's string is written on (0 when it cannot be found)."""
    for form in (command, json.dumps(command)[1:-1]):
        for number, line in enumerate(lines, start=1):
            if form in line:
                return number
    return 0
