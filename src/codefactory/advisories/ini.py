"""INI files (setup.cfg, tox.ini) read as `configparser` reads them, keeping the physical
line of every line of a value, so a pin found in one can name its line."""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\[(?P<name>.+)\]")  # configparser's SECTCRE, greedy to the last `]`
_OPTION = re.compile(r"^(?P<key>.*?)\s*[=:]\s*(?P<value>.*)$")


def ini_values(text: str) -> dict[tuple[str, str], list[tuple[int, str]]]:
    """configparser's reading (default options: `#`/`;` full-line comments, no inline
    comments, indented continuation lines, keys lower-cased) keeping each value's physical
    lines: (section, key) → [(line, text)], the key's own line first. setuptools' dashed
    keys (`install-requires`) read as underscored."""
    values: dict[tuple[str, str], list[tuple[int, str]]] = {}
    section = ""
    current: list[tuple[int, str]] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith(("#", ";")):
            continue
        indented = raw[:1].isspace()
        if current is not None and indented:
            current.append((number, raw))
            continue
        if not stripped:
            if current is not None:
                current.append((number, ""))
            continue
        header = _HEADER.match(stripped)
        if header is not None:
            section, current = header.group("name").strip(), None
            continue
        option = _OPTION.match(stripped)
        if option is None or not section:
            current = None
            continue
        key = option.group("key").strip().lower().replace("-", "_")
        current = [(number, option.group("value"))]
        values[(section, key)] = current
    for lines in values.values():
        while len(lines) > 1 and not lines[-1][1].strip():
            lines.pop()
    return values
