"""Whether an edit of a file that is only partly tool configuration touches a judge.

The files are compared as the tools read them, not by the spelling of their headers:

- `pyproject.toml` as TOML 1.0 data (`tomllib`): `[tool.ruff]`, `[ tool . ruff ]`,
  `["tool".ruff]`, a root dotted key `tool.ruff.lint.ignore = [...]` and an inline table
  under `[tool]` are one table;
- `setup.cfg` as INI (`configparser`, as flake8, mypy, coverage and pylint read it; pytest's
  `iniconfig` too), section names compared whitespace- and case-insensitively, `[DEFAULT]`
  included since every section inherits it;
- `package.json` as JSON (RFC 8259): the scripts `npm test` and `npm run lint` run
  (`pre`/`post` hooks and scripts they name, transitively) and the keys test and lint tools
  read (`eslintConfig`, `jest`, ...).

A version that does not parse (either side) is an edit of the whole file: what a tool would
make of it cannot be told. Each function returns a 1-based line of the new version to show
(0: the file was deleted), or None when no judge changed. Standard library only.
"""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from typing import Any

from codefactory.verify.diff import hunks

PACKAGE_JSON_KEYS = ("eslintConfig", "eslintIgnore", "jest", "mocha", "ava", "c8", "nyc")
"""Top-level `package.json` keys that test, coverage and lint tools read as configuration."""
JUDGE_SCRIPTS = re.compile(r"^(?:pre|post)?(?:test|lint)(?:$|[^a-z])", re.I)
"""Scripts that judge: `test`, `lint`, their `pre`/`post` hooks (npm runs them around the
script) and their parts (`test:unit`, `lint-js`)."""
_MISSING = object()


def toml_judge_edit(base: bytes | None, new: bytes | None, tools: tuple[str, ...]) -> int | None:
    """The line of the first edit of a `[tool.<name>*]` subtree (`tools`: name prefixes such
    as `ruff`, `pytest`) between two versions of a `pyproject.toml`; None when none changed."""
    before, after = _toml(base), _toml(new)
    if before is None or after is None:
        return _whole(base, new)
    changed = [t for t in tools if _tool_subtree(before, t) != _tool_subtree(after, t)]
    if not changed:
        return None
    prefixes = tuple(f"tool.{t}" for t in changed)
    return _located(base, new, prefixes, changed)


def ini_judge_edit(base: bytes | None, new: bytes | None, sections: tuple[str, ...]) -> int | None:
    """The line of the first edit of a section whose name starts with one of `sections`
    (`flake8`, `tool:pytest`, `coverage:`, ...) between two versions of a `setup.cfg`;
    None when none changed. Read by `configparser` and, for what it would miss (a header
    only pytest's `iniconfig` reads as one), by the changed lines under any judge header."""
    before, after = _ini(base), _ini(new)
    if before is None or after is None:
        return _whole(base, new)
    changed = [s for s in sections if _ini_sections(before, s) != _ini_sections(after, s)]
    line = _in_tables(base, new, sections)
    if line is not None:
        return line
    return _located(base, new, sections, changed) if changed else None


def package_json_judge_edit(base: bytes | None, new: bytes | None) -> tuple[int, str] | None:
    """(line, what changed: `scripts.test, jest`) of an edit of what judges in a
    `package.json` (the `JUDGE_SCRIPTS` scripts and those they name, `PACKAGE_JSON_KEYS`);
    None when neither changed."""
    before, after = _manifest(base), _manifest(new)
    if before is None or after is None:
        return _whole(base, new), "the file does not parse as a JSON object"
    changed = [k for k in PACKAGE_JSON_KEYS if before.get(k, _MISSING) != after.get(k, _MISSING)]
    scripts = _scripts(before), _scripts(after)
    if scripts[0] is None or scripts[1] is None:
        if before.get("scripts") != after.get("scripts"):
            changed.append("scripts")
    else:
        judging = _judging_scripts(scripts[0]) | _judging_scripts(scripts[1])
        changed += [
            f"scripts.{name}"
            for name in sorted(judging)
            if scripts[0].get(name) != scripts[1].get(name)
        ]
    if not changed:
        return None
    keys = [key.split(".", 1)[-1] for key in changed]
    return _located(base, new, (), [f'"{key}"' for key in keys]), ", ".join(changed)


def _toml(content: bytes | None) -> dict[str, Any] | None:
    if content is None:
        return {}
    try:
        return tomllib.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


def _tool_subtree(data: dict[str, Any], prefix: str) -> object:
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        return tool  # `tool = 1`: not a table, but an edit of it is still one
    return {k: v for k, v in tool.items() if k.lower().startswith(prefix.lower())}


def _ini(content: bytes | None) -> configparser.RawConfigParser | None:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    if content is None:
        return parser
    try:
        parser.read_string(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, configparser.Error):
        return None
    return parser


def _ini_sections(parser: configparser.RawConfigParser, prefix: str) -> dict[str, Any]:
    return {
        name: dict(parser.items(name))
        for name in parser.sections()
        if _normal(name).startswith(_normal(prefix))
    }


def _manifest(content: bytes | None) -> dict[str, Any] | None:
    if content is None:
        return {}
    try:
        data = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _scripts(manifest: dict[str, Any]) -> dict[str, Any] | None:
    scripts = manifest.get("scripts", {})
    return scripts if isinstance(scripts, dict) else None


def _judging_scripts(scripts: dict[str, Any]) -> set[str]:
    """`JUDGE_SCRIPTS` and, transitively, every script their commands name (and its hooks)."""
    found = {name for name in scripts if JUDGE_SCRIPTS.match(name)}
    pending = list(found)
    while pending:
        command = str(scripts.get(pending.pop(), ""))
        for name in scripts:
            if name in found or not _names(command, name):
                continue
            for hooked in (name, f"pre{name}", f"post{name}"):
                if hooked in scripts and hooked not in found:
                    found.add(hooked)
                    pending.append(hooked)
    return found


def _names(command: str, name: str) -> bool:
    return re.search(rf"(?<![\w:.-]){re.escape(name)}(?![\w:.-])", command) is not None


def _normal(name: str) -> str:
    return re.sub(r"[\s\"']", "", name).lower()


def _lines(content: bytes | None) -> list[str]:
    return [raw.decode("utf-8", "replace") for raw in (content or b"").splitlines()]


def _whole(base: bytes | None, new: bytes | None) -> int:
    if new is None:
        return 0
    first = hunks(base, new)
    return first[0].new_start if first and first[0].new_start <= len(_lines(new)) else 1


def _located(
    base: bytes | None, new: bytes | None, prefixes: tuple[str, ...], names: list[str]
) -> int:
    """A line to show for an edit of the judges `names`: the first changed line inside one of
    their headed tables, else the first changed line that names one, else the first line that
    names one, else 1 (0 when the file was deleted)."""
    if new is None:
        return 0
    inside = _in_tables(base, new, prefixes) if prefixes else None
    if inside is not None:
        return inside
    lines = _lines(new)
    wanted = [n.lower().removeprefix("tool.") for n in names]
    changed = {n for h in hunks(base, new) for n in range(h.new_start, h.new_end)}
    numbers: list[int] = [*sorted(changed), *range(1, len(lines) + 1)]
    return next((n for n in numbers if any(w in lines[n - 1].lower() for w in wanted)), 1)


def _in_tables(base: bytes | None, new: bytes | None, prefixes: tuple[str, ...]) -> int | None:
    """The first changed line under a header that names one of `prefixes` (new side; a line
    near where it was when only removed lines were), None when no such line changed."""
    new_lines, base_lines = _table_lines(new, prefixes), _table_lines(base, prefixes)
    for hunk in hunks(base, new):
        changed_new = set(range(hunk.new_start, hunk.new_end)) & new_lines
        if changed_new:
            return min(changed_new)
        if set(range(hunk.base_start, hunk.base_end)) & base_lines:
            return max(1, min(hunk.new_start, len(_lines(new)))) if new is not None else 0
    return None


def _table_lines(content: bytes | None, prefixes: tuple[str, ...]) -> set[int]:
    """Lines under a header (`[name]`, `[[name]]`, with anything after the bracket: configparser
    takes up to the last `]`, iniconfig up to a comment) whose name starts with a prefix."""
    wanted = tuple(_normal(p) for p in prefixes)
    inside, lines = False, set()
    for number, line in enumerate(_lines(content), start=1):
        stripped = line.strip()
        if stripped.startswith("[") and "]" in stripped:
            body = stripped.lstrip("[")
            names = {_normal(body.split("]", 1)[0]), _normal(body.rsplit("]", 1)[0])}
            inside = any(name.startswith(wanted) for name in names)
        if inside:
            lines.add(number)
    return lines
