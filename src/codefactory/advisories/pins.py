"""Exact dependency pins (`name==version`) in requirements files and pyproject.toml.

Pins are found by parsing (PEP 508 via `packaging`, TOML via `tomllib`) and rewritten by
replacing the version's characters only, so comments, markers, extras and formatting stay
byte-for-byte: a reviewer sees a one-token diff.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from codefactory.advisories.errors import PinFilesUnlisted, RequirementsInvalid
from codefactory.sandbox.layout import system_tool
from codefactory.sandbox.port import Phase

if TYPE_CHECKING:
    from codefactory.sandbox.port import Workspace

PYPROJECT = "pyproject.toml"
REQUIREMENTS_GLOB = "requirements*.txt"
# The version after the single `==` (not `===`) of an exact pin.
_VERSION = re.compile(r"(?<![=!<>~])==(?!=)\s*(?P<version>[^\s;,)#\\'\"]+)")
# A TOML basic or literal one-line string.
_TOML_STRING = re.compile(r"\"(?P<basic>(?:[^\"\\\n]|\\.)*)\"|'(?P<literal>[^'\n]*)'")
_TABLE_HEADER = re.compile(r"^\s*\[\[?(?P<name>[^\[\]]+)\]\]?\s*(?:#.*)?$")


@dataclass(frozen=True, kw_only=True)
class Pin:
    """One exact pin: the file, the name as written, the pinned version, its 1-based line."""

    file: str
    name: str
    version: str
    line: int


def is_pin_file(path_name: str) -> bool:
    """Whether a file name is one this module reads: pyproject.toml or requirements*.txt."""
    base = PurePosixPath(path_name).name
    return base == PYPROJECT or fnmatch.fnmatch(base, REQUIREMENTS_GLOB)


def find_pins(path_name: str, text: str) -> list[Pin]:
    """Every exact pin in a requirements file or pyproject.toml, in file order."""
    if PurePosixPath(path_name).name == PYPROJECT:
        return [pin for pin, _ in _pyproject_pins(path_name, text)]
    return [pin for pin, _ in _requirement_pins(path_name, text)]


def rewrite_pin(
    path_name: str, text: str, name: str, new_version: str, *, only_version: str | None = None
) -> str:
    """`text` with every exact pin of `name` (at `only_version`, if given) set to `new_version`."""
    wanted = canonicalize_name(name)
    lines = text.splitlines(keepends=True)
    if PurePosixPath(path_name).name == PYPROJECT:
        spans = list(_pyproject_pins(path_name, text))
    else:
        spans = list(_requirement_pins(path_name, text))
    for pin, (start, end) in reversed(spans):
        if canonicalize_name(pin.name) == wanted and only_version in (None, pin.version):
            line = lines[pin.line - 1]
            lines[pin.line - 1] = line[:start] + new_version + line[end:]
    return "".join(lines)


def read_pin_files(
    workspace: Workspace, *, phase: Phase, wanted: Callable[[str], bool] = is_pin_file
) -> dict[str, str]:
    """The text of each `wanted` file at the workspace root (pin files by default), sorted."""
    listing = workspace.exec([system_tool("ls"), "-1A"], phase=phase, timeout_s=60)
    if not listing.ok:
        raise PinFilesUnlisted(listing.stderr.strip() or f"exit code {listing.exit_code}")
    files: dict[str, str] = {}
    for name in sorted(listing.stdout.splitlines()):
        if not wanted(name):
            continue
        content = workspace.read_file(name)
        if content is None:
            continue  # a directory named like a pin file
        try:
            files[name] = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequirementsInvalid(name, 0, f"not UTF-8 text: {exc}") from exc
    return files


def _exact_pin(text: str, path_name: str, line: int) -> Pin | None:
    """A Pin when `text` is a PEP 508 requirement with exactly one `==` specifier."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise RequirementsInvalid(path_name, line, str(exc)) from exc
    specifiers = list(requirement.specifier)
    if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
        return None
    return Pin(file=path_name, name=requirement.name, version=specifiers[0].version, line=line)


def _requirement_pins(path_name: str, text: str) -> Iterator[tuple[Pin, tuple[int, int]]]:
    """Pins of a requirements file with the column span of each version."""
    continued = False
    for number, line in enumerate(text.splitlines(), start=1):
        was_continued, continued = continued, line.rstrip().endswith("\\")
        requirement = _requirement_part(line)
        if was_continued or not requirement or _is_reference(requirement):
            continue
        pin = _exact_pin(requirement, path_name, number)
        match = _VERSION.search(line, 0, len(requirement))
        if pin is not None and match is not None:
            yield pin, match.span("version")


def _requirement_part(line: str) -> str:
    """The requirement of a line: no comment, no trailing pip options, no continuation."""
    text = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].rstrip().removesuffix("\\").rstrip()
    if text.lstrip().startswith("-"):
        return ""  # -r, -c, -e, --index-url...: not a pin
    # pip reads options after the requirement (`pkg==1 --hash=...`), as its own parser does
    option = re.search(r"\s-", text)
    return (text[: option.start()] if option else text).rstrip()


def _is_reference(requirement: str) -> bool:
    """A local path or URL (`.`, `./lib`, `git+https://...`): nothing pinned on an index."""
    head = requirement.strip()
    return head.startswith((".", "/", "~")) or "://" in head.split("@", 1)[0]


def _pyproject_pins(path_name: str, text: str) -> Iterator[tuple[Pin, tuple[int, int]]]:
    """Pins of `[project]` dependency strings with the version span in their line."""
    dependencies = _project_dependencies(path_name, text)
    lines = text.splitlines(keepends=True)
    for number, line in _project_lines(lines):
        for string in _TOML_STRING.finditer(line):
            value = string.group("basic") or string.group("literal")
            if value is None or value not in dependencies:
                continue
            pin = _exact_pin(value, path_name, number)
            match = _VERSION.search(line, string.start() + 1, string.end() - 1)
            if pin is not None and match is not None:
                yield pin, match.span("version")


def _project_dependencies(path_name: str, text: str) -> set[str]:
    try:
        project: dict[str, Any] = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError as exc:
        raise RequirementsInvalid(path_name, 0, str(exc)) from exc
    strings = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        strings.extend(group)
    for value in strings:
        if not isinstance(value, str):
            raise RequirementsInvalid(path_name, 0, f"dependency {value!r} is not a string")
    return set(strings)


def _project_lines(lines: list[str]) -> Iterator[tuple[int, str]]:
    """Lines inside the `[project]` and `[project.optional-dependencies]` tables."""
    inside = False
    for number, line in enumerate(lines, start=1):
        header = _TABLE_HEADER.match(line)
        if header is not None:
            inside = header.group("name").strip() in ("project", "project.optional-dependencies")
        elif inside:
            yield number, line
