"""Test selection: the tests that reach the changed code, or the whole suite and why.

A change inside a function's body (or its `def` line) can only alter tests that ran that
body at the base commit: their execution is identical up to the first changed line. Those
tests are taken from the base commit's map, plus every test that uses a shared fixture which
ran it, plus every test in a changed test file. Anything whose reach the map cannot bound
falls back to the whole suite: no map (or a stale one), configuration, dependency or
conftest changes, import-time code (module statements, decorators, class bodies, functions
added or removed), data files tests may read, added or deleted modules, and code that runs
outside any test. Comments and blank lines are ignored.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from codefactory.domain import Change
from codefactory.verify.diff import Hunk, base_of, hunks
from codefactory.verify.regions import Region, enclosing, function_regions
from codefactory.verify.testmap import TestMap

FULL_SUITE_FILES = (
    "conftest.py",
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    "tox.ini",
    "pytest.ini",
    ".coveragerc",
    "requirements*.txt",
    "*.lock",
    "Pipfile",
    "pylock*.toml",
    "noxfile.py",
    ".python-version",
    "MANIFEST.in",
)
IGNORED_FILES = ("*.md", "*.rst", "LICENSE*", "CHANGELOG*", "AUTHORS*", ".gitignore", "docs/*")
TEST_FILES = ("test_*.py", "*_test.py")


class FullSuite(Exception):
    """Raised inside the selection when only the whole suite is safe; the message says why."""


@dataclass(frozen=True, kw_only=True)
class Selection:
    """What to run: the whole suite (`full`) or these pytest selectors, and why."""

    full: bool
    reasons: tuple[str, ...]
    selectors: tuple[str, ...] = ()
    suite_size: int = 0
    reached: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """For each changed function (`path::qualname`), the tests that ran it at the base."""


def full(reason: str, suite_size: int = 0) -> Selection:
    return Selection(full=True, reasons=(reason,), suite_size=suite_size)


def select_tests(test_map: TestMap | None, change: Change) -> Selection:
    """The tests to run for `change`, from the map of its base commit."""
    if test_map is None:
        return full("no test map of the base commit")
    size = len(test_map.tests)
    if not test_map.tests:
        return full("the base commit's map holds no tests", size)
    if change.is_empty:
        return full("the change is empty", size)
    try:
        chosen, reached, reasons = _select(test_map, change)
    except FullSuite as reason:
        return full(str(reason), size)
    if not chosen:
        return full("no recorded test reaches the changed code", size)
    return Selection(
        full=False,
        reasons=tuple(reasons),
        selectors=tuple(sorted(chosen)),
        suite_size=size,
        reached=reached,
    )


def _select(
    test_map: TestMap, change: Change
) -> tuple[set[str], dict[str, tuple[str, ...]], list[str]]:
    chosen: set[str] = set()
    reached: dict[str, tuple[str, ...]] = {}
    reasons: list[str] = []
    for file in change.files:
        path = file.path
        name = PurePosixPath(path).name
        if _any(name, FULL_SUITE_FILES):
            raise FullSuite(f"{path} is configuration, a dependency file or a conftest")
        if _any(name, IGNORED_FILES) or _any(path, IGNORED_FILES):
            continue
        if not path.endswith(".py"):
            raise FullSuite(f"{path} is not Python: tests may read it")
        known, base = base_of(change, path)
        if not known:
            raise FullSuite(f"the base version of {path} is unknown")
        is_test_file = _any(name, TEST_FILES)
        if base is None and file.content is not None and is_test_file:
            chosen.add(path)
            reasons.append(f"{path} is a new test file: all of its tests run")
            continue
        if base is None or file.content is None:
            raise FullSuite(f"{path} was {'added' if base is None else 'deleted'}")
        if is_test_file:
            chosen.add(path)
            reasons.append(f"{path} changed: all of its tests run")
        for qualname in _changed_functions(test_map, path, base, file.content, is_test_file):
            tests = _tests_reaching(test_map, path, qualname)
            reached[f"{path}::{qualname}"] = tuple(sorted(tests))
            chosen |= {test_map.tests[t].selector for t in tests}
            reasons.append(f"{path}::{qualname} changed: {len(tests)} test(s) ran it")
    return chosen, reached, reasons


def _changed_functions(
    test_map: TestMap, path: str, base: bytes, new: bytes, is_test_file: bool
) -> set[str]:
    """Functions whose body or `def` line changed; FullSuite for import-time changes.

    In a test file, import-time changes (a new test, an import) concern that file's own
    tests, which run anyway: a test module's import-time code is assumed to serve only it.
    """
    entry = test_map.files.get(path)
    if entry is None:
        if is_test_file:
            return set()
        raise FullSuite(f"{path} never ran inside the base suite: tests may run it as a program")
    if entry.sha256 != hashlib.sha256(base).hexdigest():
        raise FullSuite(f"the test map is stale for {path}")
    try:
        base_regions, new_regions = function_regions(base), function_regions(new)
    except SyntaxError as exc:
        raise FullSuite(f"{path} cannot be parsed ({exc.msg}, line {exc.lineno})") from exc
    sides = (
        (base_regions, {r.qualname for r in new_regions}),
        (new_regions, {r.qualname for r in base_regions}),
    )
    changed: set[str] = set()
    for hunk in hunks(base, new):
        if _only_comments(base, new, hunk):
            continue
        spans = (range(hunk.base_start, hunk.base_end), range(hunk.new_start, hunk.new_end))
        for (regions, other_side), lines in zip(sides, spans, strict=True):
            for line in lines:
                owner = _owner(regions, line, other_side)
                if owner is not None:
                    changed.add(owner)
                elif not is_test_file:
                    raise FullSuite(
                        f"{path}:{line} runs at import time (module, class body or decorator)"
                    )
    return changed


def _owner(regions: list[Region], line: int, other_side: set[str]) -> str | None:
    """The innermost function holding `line` that exists on both sides; None: import time."""
    for region in reversed(enclosing(regions, line)):
        if region.qualname not in other_side:
            continue  # added or removed here: its enclosing scope changed
        return region.qualname if region.is_function else None
    return None


def _tests_reaching(test_map: TestMap, path: str, qualname: str) -> set[str]:
    """Node ids of the tests that ran `qualname`, directly or through a shared fixture."""
    contexts = test_map.files[path].functions.get(qualname, ())
    tests: set[str] = set()
    for context in contexts:
        if context in test_map.tests:
            tests.add(context)
        elif context.startswith("fixture|"):
            fixture = context.removeprefix("fixture|")
            tests |= {t for t, info in test_map.tests.items() if fixture in info.fixtures}
        elif context.startswith("teardown-wide|"):
            raise FullSuite(f"{path}::{qualname} runs while a shared fixture is torn down")
        else:
            raise FullSuite(f"{path}::{qualname} runs outside any test ({context or 'import'})")
    return tests


def _only_comments(base: bytes, new: bytes, hunk: Hunk) -> bool:
    old = base.splitlines()[hunk.base_start - 1 : hunk.base_end - 1]
    added = new.splitlines()[hunk.new_start - 1 : hunk.new_end - 1]
    return all(_is_comment(line) for line in (*old, *added))


def _is_comment(line: bytes) -> bool:
    stripped = line.strip()
    return not stripped or (stripped.startswith(b"#") and not stripped.startswith(b"# type:"))


def _any(name: str, globs: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, glob) for glob in globs)
