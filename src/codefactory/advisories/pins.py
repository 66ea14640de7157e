"""Exact dependency pins in requirements files and pyproject.toml, found and rewritten.

Reading follows pip (`requirements.py`) and PEP 621/735 (`pyproject.py`); rewriting replaces
the version's characters only, so comments, markers, extras and formatting stay
byte-for-byte: a reviewer sees a one-token diff.
"""

from __future__ import annotations

import fnmatch
from pathlib import PurePosixPath

from packaging.utils import canonicalize_name

from codefactory.advisories.errors import RequirementsInvalid
from codefactory.advisories.model import Located, Pin, Unpinned, Unreadable
from codefactory.advisories.pyproject import parse_pyproject
from codefactory.advisories.requirements import parse_requirements, rewrite_requirement

__all__ = ["Pin", "Unpinned", "Unreadable", "find_pins", "is_pin_file", "locate", "rewrite_pin"]

PYPROJECT = "pyproject.toml"
REQUIREMENTS_GLOBS = (
    "requirements*.txt",
    "requirements*.in",
    "constraints*.txt",
    "constraints*.in",
)
"""File names read as pip requirements files wherever they are."""
REQUIREMENTS_FOLDERS = ("requirements*",)
"""Folders whose `*.txt` and `*.in` files are requirements files (`requirements/base.txt`)."""


def is_pin_file(path_name: str) -> bool:
    """Whether a path is a file this module reads: a pyproject.toml, a requirements or
    constraints file (`requirements-dev.txt`, `constraints.txt`, `requirements/base.txt`)."""
    path = PurePosixPath(path_name)
    if path.name == PYPROJECT or any(fnmatch.fnmatch(path.name, g) for g in REQUIREMENTS_GLOBS):
        return True
    in_folder = any(fnmatch.fnmatch(path.parent.name, g) for g in REQUIREMENTS_FOLDERS)
    return in_folder and path.suffix in (".txt", ".in")


def is_requirements_file(path_name: str) -> bool:
    """Whether a pin file is read as a pip requirements file (not a pyproject.toml)."""
    return PurePosixPath(path_name).name != PYPROJECT


def locate(path_name: str, text: str) -> tuple[list[Located], list[Unpinned], list[Unreadable]]:
    """The located exact pins, unpinned requirements and unreadable spots of one file.

    A pyproject.toml is read as PEP 621/735, anything else as a pip requirements file (its
    `-r`/`-c` includes are not followed here: `reading.py` follows them).
    """
    if PurePosixPath(path_name).name == PYPROJECT:
        parsed = parse_pyproject(path_name, text)
        return list(parsed.located), list(parsed.unpinned), list(parsed.problems)
    read = parse_requirements(path_name, text)
    return list(read.located), list(read.unpinned), list(read.problems)


def find_pins(path_name: str, text: str) -> list[Pin]:
    """Every exact pin of a requirements file or pyproject.toml, in file order; raises
    RequirementsInvalid naming the first spot it cannot read."""
    located, _, problems = locate(path_name, text)
    if problems:
        raise RequirementsInvalid(problems[0].file, problems[0].line, problems[0].reason)
    return [entry.pin for entry in located]


def rewrite_pin(
    path_name: str,
    text: str,
    name: str,
    new_version: str,
    *,
    only_version: str | None = None,
    hashes: tuple[str, ...] | None = None,
) -> str:
    """`text` with every exact pin of `name` (at `only_version`, if given) set to
    `new_version`; `hashes` replace the `--hash` options of a requirements-file pin."""
    wanted = canonicalize_name(name)
    located, _, _ = locate(path_name, text)
    for entry in reversed(located):
        pin = entry.pin
        if canonicalize_name(pin.name) != wanted or only_version not in (None, pin.version):
            continue
        if not entry.version_line:
            continue
        if is_requirements_file(path_name):
            text = rewrite_requirement(text, entry, new_version, hashes=hashes)
        else:
            lines = text.splitlines(keepends=True)
            line = lines[entry.version_line - 1]
            lines[entry.version_line - 1] = line[: entry.start] + new_version + line[entry.end :]
            text = "".join(lines)
    return text
