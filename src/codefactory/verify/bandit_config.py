"""The repository's bandit rule selection, and nothing else of its bandit configuration.

A repository configures bandit in `pyproject.toml` (`[tool.bandit]`, read by `bandit -c
pyproject.toml`) or in a `.bandit` INI file (`[bandit]`, found by `bandit -r`). Of either,
only the rule selection counts here: `tests` (run only these) and `skips` (never these),
passed to bandit as `-t` / `-s` and applied to ruff's `S` port of bandit. Everything else
(`exclude_dirs`, `exclude`, `targets`, `recursive`, severity and confidence levels, `baseline`,
`ignore-nosec`, output) is never read, and bandit is never given the files: a configuration
cannot hide a changed file or quiet a finding. The integrity check reports any edit of these
files (`judges.py`), so a change cannot relax the selection it is judged by.
"""

from __future__ import annotations

import configparser
import re
import tomllib
from dataclasses import dataclass

from codefactory.projects.model import FileSource

TEST_ID = re.compile(r"B\d{3}")
"""A bandit test id (`B602`); plugin names are not accepted."""


@dataclass(frozen=True, kw_only=True)
class RuleSelection:
    """Which bandit tests run; empty `tests`: all of them. `problems`: what could not be read
    (the selection is then ignored, and every test runs)."""

    tests: frozenset[str] = frozenset()
    skips: frozenset[str] = frozenset()
    sources: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def allows(self, rule: str) -> bool:
        """Whether findings of `rule` (`B602`) are reported."""
        return (not self.tests or rule in self.tests) and rule not in self.skips

    def bandit_args(self) -> list[str]:
        args = []
        if self.tests:
            args += ["-t", ",".join(sorted(self.tests))]
        if self.skips:
            args += ["-s", ",".join(sorted(self.skips))]
        return args

    def describe(self) -> str:
        """One clause for a summary: where the selection came from, or why it was ignored."""
        if self.problems:
            return "the repository's bandit selection was ignored: " + "; ".join(self.problems)
        if not self.sources:
            return ""
        parts = []
        if self.tests:
            parts.append(f"only {', '.join(sorted(self.tests))}")
        if self.skips:
            parts.append(f"skipping {', '.join(sorted(self.skips))}")
        return f"bandit tests per {' and '.join(self.sources)}: {'; '.join(parts) or 'all'}"


def read_selection(files: FileSource) -> RuleSelection:
    """The union of the `tests` and `skips` of `[tool.bandit]` and `.bandit` `[bandit]`.

    A value that is not a list of bandit test ids (`B101`), or a file that does not parse,
    makes the whole selection ignored, with the reason in `problems`: an unreadable
    selection widens the scan, never narrows it.
    """
    tests: set[str] = set()
    skips: set[str] = set()
    sources: list[str] = []
    problems: list[str] = []
    for source, values in (
        ("pyproject.toml [tool.bandit]", _pyproject(files.read("pyproject.toml"))),
        (".bandit [bandit]", _ini(files.read(".bandit"))),
    ):
        if values is None:
            continue
        if isinstance(values, str):
            problems.append(f"{source}: {values}")
            continue
        sources.append(source)
        for key, into in (("tests", tests), ("skips", skips)):
            ids, problem = _ids(values.get(key))
            if problem:
                problems.append(f"{source} {key}: {problem}")
            into |= ids
    if problems:
        return RuleSelection(sources=tuple(sources), problems=tuple(problems))
    return RuleSelection(tests=frozenset(tests), skips=frozenset(skips), sources=tuple(sources))


def _pyproject(raw: bytes | None) -> dict[str, object] | str | None:
    if raw is None:
        return None
    try:
        document = tomllib.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return f"cannot be parsed ({exc})"
    tool = document.get("tool")
    bandit = tool.get("bandit") if isinstance(tool, dict) else None
    if bandit is None:
        return None
    if not isinstance(bandit, dict):
        return "is not a table"
    return {str(k): v for k, v in bandit.items()}


def _ini(raw: bytes | None) -> dict[str, object] | str | None:
    if raw is None:
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, configparser.Error) as exc:
        return f"cannot be parsed ({type(exc).__name__})"
    if not parser.has_section("bandit"):
        return None
    return {key: value for key, value in parser.items("bandit")}


def _ids(value: object) -> tuple[set[str], str]:
    """Test ids from a TOML list or an INI comma-separated string; (ids, problem)."""
    if value is None:
        return set(), ""
    if isinstance(value, str):
        items: list[object] = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list):
        items = list(value)
    else:
        return set(), f"{value!r} is not a list of test ids"
    bad = [item for item in items if not (isinstance(item, str) and TEST_ID.fullmatch(item))]
    if bad:
        return set(), f"{bad[0]!r} is not a bandit test id (B101, B602, ...)"
    return {str(item) for item in items}, ""
