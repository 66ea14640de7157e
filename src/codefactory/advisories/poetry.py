"""Poetry's own dependency tables in pyproject.toml: `[tool.poetry.dependencies]`,
`[tool.poetry.dev-dependencies]` and `[tool.poetry.group.<name>.dependencies]`.

A value is a constraint string, a table (`{version = "...", extras = [...]}`, or a source:
`git`, `path`, `url`, `file`), or a list of tables with markers. Poetry reads a bare version
(`"2.19.1"`) or `==2.19.1` as exact (poetry-core's `parse_constraint`); `^`, `~`, `*`,
ranges and wildcards are not. The `python` entry is the interpreter, not a package.
"""

from __future__ import annotations

import re
from typing import Any

from packaging.version import InvalidVersion, Version

from codefactory.advisories.model import Located, Pin, Unpinned, Unreadable

_EXACT = re.compile(r"^\s*(?:==)?\s*(?P<version>[0-9][0-9A-Za-z.!+-]*)\s*$")
_SOURCES = {"git": "vcs", "path": "path", "url": "url", "file": "path"}
_HEADER = re.compile(r"^\s*\[(?P<name>[^\[\]]+)\]\s*(?:#.*)?$")

Found = tuple[list[Located], list[Unpinned], list[Unreadable]]


def poetry_dependencies(path: str, data: dict[str, Any], text: str) -> Found:
    """The pins, unpinned entries and problems of a pyproject.toml's poetry tables."""
    tool = data.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    found: Found = ([], [], [])
    if not isinstance(poetry, dict):
        return found
    tables = {
        "tool.poetry.dependencies": poetry.get("dependencies"),
        "tool.poetry.dev-dependencies": poetry.get("dev-dependencies"),
    }
    groups = poetry.get("group")
    if isinstance(groups, dict):
        for name, group in groups.items():
            if isinstance(group, dict):
                tables[f"tool.poetry.group.{name}.dependencies"] = group.get("dependencies")
    lines = text.splitlines()
    regions = _regions(lines)
    for table, entries in tables.items():
        if entries is None:
            continue
        if not isinstance(entries, dict):
            found[2].append(Unreadable(file=path, line=0, reason=f"[{table}] is not a table"))
            continue
        for name, value in entries.items():
            if name != "python":
                _entry(path, table, str(name), value, lines, regions, found)
    return found


def _entry(
    path: str,
    table: str,
    name: str,
    value: Any,
    lines: list[str],
    regions: dict[str, list[int]],
    found: Found,
) -> None:
    line = _key_line(name, regions.get(table, []), lines)
    if isinstance(value, list):  # multiple constraints, each with its own markers
        for item in value:
            _entry(path, table, name, item, lines, regions, found)
        return
    if isinstance(value, dict):
        kind = next((k for s, k in _SOURCES.items() if s in value), None)
        if kind is not None:
            found[1].append(Unpinned(file=path, line=line, requirement=name, kind=kind))
            return
        constraint = value.get("version")
        if line == 0:  # `[tool.poetry.dependencies.name]` as its own table
            line = _key_line("version", regions.get(f"{table}.{name}", []), lines)
    else:
        constraint = value
    if not isinstance(constraint, str):
        reason = f"[{table}] {name}: {value!r} is not a Poetry constraint"
        found[2].append(Unreadable(file=path, line=line, reason=reason))
        return
    exact = _EXACT.match(constraint)
    version = exact.group("version") if exact else None
    if version is None or not _is_version(version):
        requirement = f"{name} {constraint}"
        found[1].append(Unpinned(file=path, line=line, requirement=requirement, kind="range"))
        return
    pin = Pin(file=path, name=name, version=version, line=line)
    span = _span(lines, line, version)
    if span is None:
        found[0].append(Located(pin=pin, version_line=0, start=0, end=0, lines=()))
    else:
        found[0].append(
            Located(pin=pin, version_line=line, start=span[0], end=span[1], lines=(line,))
        )


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def _regions(lines: list[str]) -> dict[str, list[int]]:
    """The 1-based line numbers of each `[table]`'s body, by normalised table name."""
    regions: dict[str, list[int]] = {}
    current = ""
    for number, line in enumerate(lines, start=1):
        header = _HEADER.match(line)
        if header is not None:
            current = re.sub(r"[\s\"']", "", header.group("name"))
            continue
        regions.setdefault(current, []).append(number)
    return regions


def _key_line(name: str, region: list[int], lines: list[str]) -> int:
    key = re.compile(r"^\s*(?:" + re.escape(name) + r"|\"" + re.escape(name) + r"\"|'"
                     + re.escape(name) + r"')\s*=")  # fmt: skip
    return next((n for n in region if key.match(lines[n - 1])), 0)


def _span(lines: list[str], line: int, version: str) -> tuple[int, int] | None:
    """The columns of `version` in the first string after the `=` of the key's line."""
    if line == 0:
        return None
    text = lines[line - 1]
    equals = text.find("=")
    pattern = re.compile(r"([\"'])\s*(?:==)?\s*(" + re.escape(version) + r")\s*\1")
    version_key = re.search(r"\bversion\s*=\s*", text)
    start = version_key.end() if version_key else equals + 1
    found = pattern.search(text, start)
    return (found.start(2), found.end(2)) if found else None
