"""Dependencies declared in `pyproject.toml`: PEP 621 `[project]` `dependencies` and
`optional-dependencies`, PEP 735 `[dependency-groups]` (with `{include-group = ...}`),
uv's `[tool.uv]` `dev-dependencies`, `constraint-dependencies`, `override-dependencies`, and
Poetry's own tables (`poetry.py`).

TOML is parsed by `tomllib`; each dependency string is then located in the text (its table,
its line, its version's columns) so a bump rewrites the version's characters only. A table of
the wrong shape, an include of an unknown group or a cycle of includes (PEP 735 says tools
must refuse them), or a string that is not PEP 508 is an `Unreadable` spot.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from codefactory.advisories.model import DeclaringFile, Located, Pin, Unpinned, Unreadable
from codefactory.advisories.poetry import poetry_dependencies
from codefactory.advisories.requirements import exact_version

_STRING = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'")
_HEADER = re.compile(r"^\s*\[\[?(?P<name>[^\[\]]+)\]\]?\s*(?:#.*)?$")
_TOML_ERROR_LINE = re.compile(r"at line (\d+)")
_VCS = ("git+", "hg+", "svn+", "bzr+")
_UV_LISTS = ("dev-dependencies", "constraint-dependencies", "override-dependencies")


@dataclass(frozen=True, kw_only=True)
class PyprojectFile(DeclaringFile):
    """What one pyproject.toml declares; `problems` is what cannot be read."""


@dataclass
class _Literal:
    line: int
    start: int
    end: int
    value: str
    used: bool = False


@dataclass
class _Found:
    problems: list[Unreadable] = field(default_factory=list)
    strings: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    """(dependency string, the tables it may be written in)."""


def parse_pyproject(path: str, text: str) -> PyprojectFile:
    """Every exact pin, unpinned requirement and unreadable spot of a pyproject.toml."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = _TOML_ERROR_LINE.search(str(exc))
        reason = f"not valid TOML: {exc}"
        return PyprojectFile(
            problems=(Unreadable(file=path, line=int(at.group(1)) if at else 0, reason=reason),)
        )
    found = _Found()
    _project(path, data.get("project"), found)
    _groups(path, data.get("dependency-groups"), found)
    tool = data.get("tool")
    uv = tool.get("uv") if isinstance(tool, dict) else None
    if isinstance(uv, dict):
        for key in _UV_LISTS:
            _strings(path, uv.get(key), f"[tool.uv] {key}", ("tool.uv",), found)
    literals = _literals(text)
    lines = text.splitlines()
    located: list[Located] = []
    unpinned: list[Unpinned] = []
    problems = list(found.problems)
    for value, tables in found.strings:
        spot = next(
            (
                lit
                for t in tables
                for lit in literals.get(t, [])
                if not lit.used and lit.value == value
            ),
            None,
        )
        if spot is not None:
            spot.used = True
        entry = _entry(path, value, spot, lines)
        if isinstance(entry, Located):
            located.append(entry)
        elif isinstance(entry, Unpinned):
            unpinned.append(entry)
        else:
            problems.append(entry)
    poetry = poetry_dependencies(path, data, text)
    located.extend(poetry[0])
    unpinned.extend(poetry[1])
    problems.extend(poetry[2])
    return PyprojectFile(located=tuple(located), unpinned=tuple(unpinned), problems=tuple(problems))


def _project(path: str, project: Any, found: _Found) -> None:
    if project is None:
        return
    if not isinstance(project, dict):
        found.problems.append(Unreadable(file=path, line=0, reason="[project] is not a table"))
        return
    _strings(path, project.get("dependencies"), "[project] dependencies", ("project",), found)
    optional = project.get("optional-dependencies")
    if optional is None:
        return
    if not isinstance(optional, dict):
        reason = "[project] optional-dependencies is not a table"
        found.problems.append(Unreadable(file=path, line=0, reason=reason))
        return
    for extra, values in optional.items():
        where = f"[project.optional-dependencies] {extra}"
        _strings(path, values, where, ("project.optional-dependencies", "project"), found)


def _strings(path: str, values: Any, where: str, tables: tuple[str, ...], found: _Found) -> None:
    if values is None:
        return
    if not isinstance(values, list):
        found.problems.append(Unreadable(file=path, line=0, reason=f"{where} is not an array"))
        return
    for value in values:
        if isinstance(value, str):
            found.strings.append((value, tables))
        else:
            reason = f"{where}: {value!r} is not a dependency string"
            found.problems.append(Unreadable(file=path, line=0, reason=reason))


def _groups(path: str, groups: Any, found: _Found) -> None:
    """PEP 735: each group's strings once; includes must name a group and never cycle."""
    if groups is None:
        return
    if not isinstance(groups, dict):
        found.problems.append(
            Unreadable(file=path, line=0, reason="[dependency-groups] is not a table")
        )
        return
    names: dict[str, str] = {}
    for name in groups:
        if canonicalize_name(name) in names:
            other = names[canonicalize_name(name)]
            reason = f"[dependency-groups] names {other!r} and {name!r} normalise alike"
            found.problems.append(Unreadable(file=path, line=0, reason=reason))
        names[canonicalize_name(name)] = name
    for name, items in groups.items():
        where = f"[dependency-groups] {name}"
        if not isinstance(items, list):
            found.problems.append(Unreadable(file=path, line=0, reason=f"{where} is not an array"))
            continue
        for item in items:
            if isinstance(item, str):
                found.strings.append((item, ("dependency-groups",)))
            elif isinstance(item, dict) and set(item) == {"include-group"}:
                problem = _include_problem(groups, names, name, str(item["include-group"]))
                if problem:
                    found.problems.append(
                        Unreadable(file=path, line=0, reason=f"{where}: {problem}")
                    )
            else:
                reason = (
                    f"{where}: {item!r} is neither a dependency string nor {{include-group = ...}}"
                )
                found.problems.append(Unreadable(file=path, line=0, reason=reason))


def _include_problem(groups: dict[str, Any], names: dict[str, str], start: str, target: str) -> str:
    """Why `{include-group = target}` in group `start` is invalid (PEP 735), else ''."""
    seen = [canonicalize_name(start)]
    pending = [target]
    while pending:
        current = canonicalize_name(pending.pop())
        if current not in names:
            return f"includes the unknown group {target!r}"
        if current in seen:
            return f"includes itself through {target!r} (a cycle)"
        seen.append(current)
        items = groups[names[current]]
        if isinstance(items, list):
            pending.extend(
                str(i["include-group"])
                for i in items
                if isinstance(i, dict) and "include-group" in i
            )
    return ""


def _literals(text: str) -> dict[str, list[_Literal]]:
    """Every one-line string literal of the text, by the table it is written in."""
    found: dict[str, list[_Literal]] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header is not None:
            table = re.sub(r"[\s\"']", "", header.group("name"))
            continue
        for match in _STRING.finditer(line):
            try:
                value = tomllib.loads(f"v = {match.group(0)}")["v"]
            except tomllib.TOMLDecodeError:
                continue
            found.setdefault(table, []).append(
                _Literal(line=number, start=match.start() + 1, end=match.end() - 1, value=value)
            )
    return found


def _entry(
    path: str, value: str, spot: _Literal | None, lines: list[str]
) -> Located | Unpinned | Unreadable:
    line = spot.line if spot else 0
    try:
        requirement = Requirement(value)
    except InvalidRequirement as exc:
        reason = f"{value!r} is not a PEP 508 requirement: {' '.join(str(exc).split())}"
        return Unreadable(file=path, line=line, reason=reason)
    if requirement.url:
        kind = "vcs" if requirement.url.startswith(_VCS) else "url"
        return Unpinned(file=path, line=line, requirement=value, kind=kind)
    version = exact_version(requirement)
    if version is None:
        return Unpinned(file=path, line=line, requirement=value, kind="range")
    pin = Pin(
        file=path,
        name=requirement.name,
        version=version,
        line=line,
        marker=str(requirement.marker or ""),
    )
    span = _span(version, spot, lines) if spot else None
    if span is None:
        return Located(pin=pin, version_line=0, start=0, end=0, lines=())
    return Located(pin=pin, version_line=line, start=span[0], end=span[1], lines=(line,))


def _span(version: str, spot: _Literal, lines: list[str]) -> tuple[int, int] | None:
    pattern = re.compile(r"(?<![=!<>~])(?:===|==)\s*(" + re.escape(version) + r")(?![\w.*+!-])")
    found = pattern.search(lines[spot.line - 1], spot.start, spot.end)
    return (found.start(1), found.end(1)) if found else None
