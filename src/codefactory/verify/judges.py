"""What judges a change: the repository's tests (Python and JavaScript/TypeScript), their
fixtures, tool configuration, waivers and inline suppressions; and which edits of a change
touch them.

An engine can make the gate pass by changing what judges it instead of the code. Every such
edit is a `JudgeEdit` with a rule id (SARIF `ruleId`), the path and line it is at, and the
`Topic` a ticket must ask for (by label) before the edit stops blocking. Adding tests is what
a good fix does: a new test file, or a new test function beside untouched ones, is no edit of
a judge (it is listed in `Judged.added_tests`). Pure functions over the change and its base
versions; nothing here runs anything.
"""

from __future__ import annotations

import enum
import fnmatch
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from codefactory.verify.configdiff import (
    ini_judge_edit,
    package_json_judge_edit,
    toml_judge_edit,
)
from codefactory.verify.diff import DiffedChange, hunks
from codefactory.verify.testdiff import TestEdit, compare_test_module, new_test_module


class Topic(enum.StrEnum):
    """What a ticket must ask for before an edit of this kind stops blocking."""

    TESTS = "tests"
    CONFIG = "config"


@dataclass(frozen=True, kw_only=True)
class JudgeEdit:
    """One edit of something that judges the change. `line` is 1-based; 0: the whole file."""

    rule: str
    path: str
    line: int
    message: str
    topic: Topic


@dataclass(frozen=True, kw_only=True)
class Judged:
    """Every judge edit of a change, and the tests it only added (not a finding)."""

    edits: tuple[JudgeEdit, ...]
    added_tests: tuple[str, ...] = ()
    """`path::name` of each test function the change added (new files included); a new
    JavaScript test file is listed by its path alone (its tests are not parsed)."""
    restore: dict[str, bytes | None] = field(default_factory=dict)
    """Path → base content (None: absent at the base) to put back for the base-test run."""
    selectors: tuple[str, ...] = ()
    """The base test files to run; empty with a non-empty `restore`: the whole suite."""

    @property
    def needs_base_tests(self) -> bool:
        return bool(self.restore)


TEST_DIRS = frozenset({"tests", "test"})
TEST_FILE_GLOBS = ("test_*.py", "*_test.py")
"""pytest's default `python_files`."""
JS_SUFFIXES = (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts")
JS_TEST_DIRS = frozenset({"__tests__", "__mocks__", "__snapshots__", "__fixtures__"})
"""Jest's test, manual-mock and snapshot folders: every file under them judges."""
JS_TEST_GLOBS = ("*.test.*", "*.spec.*", "*-test.*", "*_test.*", "test-*.*", "test.*")
"""Jest's and Vitest's default `testMatch` (`*.test.*`, `*.spec.*`) and `node --test`'s
default patterns, over the name of a file with a `JS_SUFFIXES` suffix."""
CONFIG_FILES = frozenset(
    {
        "ruff.toml",
        ".ruff.toml",
        "pytest.ini",
        ".pytest.ini",
        "pytest.toml",
        ".pytest.toml",
        "tox.ini",
        ".coveragerc",
        ".bandit",
        "mypy.ini",
        ".mypy.ini",
        ".flake8",
        ".pylintrc",
        "pylintrc",
        ".pre-commit-config.yaml",
        "pyrightconfig.json",
        ".eslintignore",
        ".npmrc",
        ".yarnrc",
        ".yarnrc.yml",
        ".env.yarn",
        "pnpm-workspace.yaml",
        ".pnpmfile.cjs",
        ".pnpmfile.mjs",
    }
)
"""Files that are tool configuration as a whole. A package manager's own configuration judges
too: `.npmrc`'s `script-shell=/bin/true` makes `npm test` pass whatever the tests say, and
its `node-options` can `--require` code into every test process."""
CONFIG_GLOBS = (
    "eslint.config.*",
    ".eslintrc",
    ".eslintrc.*",
    "jest.config.*",
    "vitest.config.*",
    "vitest.workspace.*",
    "vite.config.*",
    ".mocharc",
    ".mocharc.*",
    "karma.conf.*",
    "ava.config.*",
    "playwright.config.*",
    ".c8rc",
    ".c8rc.*",
    ".nycrc",
    ".nycrc.*",
    "tsconfig*.json",
    "jsconfig*.json",
)
"""Names (globs) of JavaScript/TypeScript tool configuration files: ESLint, Jest, Vitest
(which also reads `vite.config.*`'s `test` section: code, so every edit of it counts), Mocha,
Karma, AVA, Playwright, c8/nyc coverage, and the TypeScript compiler's strictness."""
SECTIONED_CONFIG = frozenset({"pyproject.toml", "setup.cfg"})
"""Files where only some tables are tool configuration (the rest: packaging, dependencies)."""
JUDGE_TABLES = (
    "tool.ruff",
    "tool.pytest",
    "tool.coverage",
    "tool.bandit",
    "tool.mypy",
    "tool.pyright",
    "tool.pylint",
    "tool.flake8",
    "tool.tox",
    "tool.codefactory",
    "tool.setuptools",
    "tool.hatch",
    "tool:pytest",
    "options.entry_points",
    "flake8",
    "mypy",
    "coverage:",
    "pycodestyle",
    "pylint",
    "bandit",
)
"""`pyproject.toml` tables and `setup.cfg` sections (a prefix of the name) that configure a
judge, or decide which code the tests import (`tool.setuptools` `package-dir`, `tool.hatch`
build targets and environments) or load (`options.entry_points`: a `pytest11` plugin);
dependency tables (`project`, `tool.poetry`) are not: a bump is no judge edit. A pyproject's
`project.entry-points.pytest11` is compared apart (`_pytest_plugins_edited`)."""
PYTEST_TABLES = ("tool.pytest", "tool:pytest", "pytest")
"""Where pytest reads its configuration in `pyproject.toml`, `setup.cfg` and `tox.ini`."""
PYTEST_CONFIG_FILES = frozenset(
    {"pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml", "tox.ini"}
)
PACKAGE_JSON = "package.json"
"""Partly tool configuration: its test and lint scripts and the keys tools read (see
`configdiff.package_json_judge_edit`)."""
WAIVER_FILES = (".secrets.baseline", "*bandit*baseline*", ".codefactory/*")
"""Lists of accepted findings kept in the repository (globs over the name, or the path)."""
# (marker, pattern, topic); a pattern matches inside one line of text
SUPPRESSIONS: tuple[tuple[str, re.Pattern[str], Topic], ...] = (
    ("noqa", re.compile(r"#\s*(?:ruff:\s*|flake8:\s*)?noqa\b", re.I), Topic.CONFIG),
    ("nosec", re.compile(r"#\s*nosec\b", re.I), Topic.CONFIG),
    ("type: ignore", re.compile(r"#\s*type:\s*ignore\b"), Topic.CONFIG),
    ("pyright: ignore", re.compile(r"#\s*pyright:\s*(?:ignore|basic)\b"), Topic.CONFIG),
    ("mypy: ignore-errors", re.compile(r"#\s*mypy:\s*ignore-errors\b"), Topic.CONFIG),
    ("pylint: disable", re.compile(r"#\s*pylint:\s*disable\b"), Topic.CONFIG),
    ("pragma: no cover", re.compile(r"#\s*pragma:\s*no\s*(?:cover|branch)\b", re.I), Topic.CONFIG),
    ("pragma: allowlist", re.compile(r"#\s*pragma:\s*allowlist\b", re.I), Topic.CONFIG),
    (
        "skip",
        re.compile(
            r"\bmark\.skip(?:if)?\b|\bpytest\.skip\s*\(|\bimportorskip\s*\("
            r"|\bunittest\.skip\w*|\bSkipTest\b|\bskipTest\s*\(|@skip(?:If|Unless)?\b"
        ),
        Topic.TESTS,
    ),
    ("xfail", re.compile(r"\bmark\.xfail\b|\bpytest\.xfail\s*\(|\bexpectedFailure\b"), Topic.TESTS),
)
JS_SUPPRESSION_SUFFIXES = (*JS_SUFFIXES, ".vue", ".svelte")
"""Files the `JS_SUPPRESSIONS` markers are looked for in."""
JS_SUPPRESSIONS: tuple[tuple[str, re.Pattern[str], Topic], ...] = (
    # a directive may sit alone on a line of a block comment: no comment opener required
    ("eslint-disable", re.compile(r"\b(?:eslint|oxlint)-disable\b"), Topic.CONFIG),
    ("eslint rule comment", re.compile(r"/\*\s*eslint\s+[@\w/-]+\s*:"), Topic.CONFIG),
    ("biome-ignore", re.compile(r"\bbiome-ignore\b"), Topic.CONFIG),
    ("@ts-ignore", re.compile(r"@ts-(?:ignore|nocheck|expect-error)\b"), Topic.CONFIG),
    ("coverage ignore", re.compile(r"\b(?:istanbul|c8|v8)\s+ignore\b"), Topic.CONFIG),
    (
        "skip",
        re.compile(
            r"\b(?:it|test|describe|suite|context|specify|bench)(?:\.\w+)*\."
            r"(?:skip|todo|fixme|skipIf|runIf|fails)\b"
            r"|\.(?:skip|todo)\s*\(|(?<![\w$.])x(?:it|test|describe|context|specify|suite)\s*\("
            r"|[{,]\s*(?:skip|todo)\s*:\s*(?:true\b|['\"`])"
        ),
        Topic.TESTS,
    ),
    (
        "only",
        re.compile(
            r"\b(?:it|test|describe|suite|context|specify)(?:\.\w+)*\.only\b|\.only\s*\("
            r"|(?<![\w$.])f(?:it|test|describe)\s*\(|[{,]\s*only\s*:\s*true\b"
        ),
        Topic.TESTS,
    ),
)
"""JavaScript/TypeScript markers: ESLint/oxlint/Biome directives, TypeScript's, coverage
ignores (Istanbul, c8, V8), and test skips and focus (`.skip`, `.todo`, `xit`, `.only`,
`fit`, `node:test`'s `{ skip: true }`): a focused test silently skips every other one."""
CONFIG_RULE, SUPPRESSION_RULE = "tool-config-changed", "suppression-added"
ENGINE_CONFIG_RULE = "engine-config-changed"
ENGINE_CONFIG_PATHS = (
    ".claude/*",
    ".mcp.json",
    "opencode.json",
    "opencode.jsonc",
    ".opencode/*",
    "mini.yaml",
    ".codex/*",
    ".aider*",
    ".openhands/*",
    ".cursor/*",
    "AGENTS.md",
    "CLAUDE.md",
    ".github/copilot-instructions.md",
)
"""Configuration and instructions that coding agents read from a repository (hooks, model
endpoints, MCP servers, permissions, standing instructions): an engine that writes them
steers the next engine that works here (globs over the path from the repository root)."""


def is_engine_config(path: str) -> bool:
    """Whether `path` configures or instructs coding agents (`ENGINE_CONFIG_PATHS`)."""
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in ENGINE_CONFIG_PATHS)


REPOSITORY_CONFIG = ".codefactory/config.toml"
"""How the factory sets up and tests the repository (docs/repository-config.md): its test
command, test paths and skipped or added checks decide the verdict, so a change to it is a
change to its judges."""


WHOLE_FILE_JUDGES: tuple[tuple[Callable[[str], bool], str, Topic, str], ...] = (
    (
        lambda p: p == REPOSITORY_CONFIG,
        "repository-config-changed",
        Topic.CONFIG,
        "the factory's repository config (setup, test command, checks skipped or added)",
    ),
    (lambda p: is_waiver_file(p), "waiver-added", Topic.CONFIG, "a list of accepted findings"),
    (lambda p: is_config_file(p), CONFIG_RULE, Topic.CONFIG, "tool configuration"),
    (lambda p: is_conftest(p), "conftest-changed", Topic.TESTS, "pytest fixtures and hooks"),
    (is_engine_config, ENGINE_CONFIG_RULE, Topic.CONFIG, "coding-agent configuration"),
)
"""(matches the path, rule, topic, what it is) of files that judge as a whole."""


def is_test_file(path: str) -> bool:
    """Whether pytest collects `path` by its default name patterns."""
    name = PurePosixPath(path).name
    return any(fnmatch.fnmatchcase(name, glob) for glob in TEST_FILE_GLOBS)


def is_test_path(path: str) -> bool:
    """A test file (pytest's or a JavaScript runner's), or any file under a `tests`/`test`
    folder (helpers, expected data)."""
    parts = PurePosixPath(path).parts
    return (
        is_test_file(path) or is_js_test_path(path) or any(part in TEST_DIRS for part in parts[:-1])
    )


def is_conftest(path: str) -> bool:
    return PurePosixPath(path).name == "conftest.py"


def is_waiver_file(path: str) -> bool:
    name = PurePosixPath(path).name
    return any(fnmatch.fnmatchcase(name, g) or fnmatch.fnmatchcase(path, g) for g in WAIVER_FILES)


def is_config_file(path: str) -> bool:
    """Tool configuration as a whole file (not `pyproject.toml`/`setup.cfg`/`package.json`:
    only some of their tables are)."""
    name = PurePosixPath(path).name
    return name in CONFIG_FILES or any(fnmatch.fnmatchcase(name, g) for g in CONFIG_GLOBS)


def is_js_test_path(path: str) -> bool:
    """A JavaScript/TypeScript test by Jest's, Vitest's or `node --test`'s default patterns,
    or any file under a Jest folder (`__tests__`, `__mocks__`, `__snapshots__`, ...)."""
    pure = PurePosixPath(path)
    if any(part in JS_TEST_DIRS for part in pure.parts[:-1]):
        return True
    return path.endswith(JS_SUFFIXES) and any(
        fnmatch.fnmatchcase(pure.name, glob) for glob in JS_TEST_GLOBS
    )


def _is_javascript(path: str) -> bool:
    """Run by JavaScript tools, never by pytest (the base-test run is pytest's)."""
    return path.endswith((*JS_SUFFIXES, ".snap")) or is_js_test_path(path)


def judge_edits(change: DiffedChange) -> Judged:
    """Classify every file of `change` against its base version.

    Raises KeyError when a changed path has no known base version: the caller must not
    guess whether a test is new or an old one rewritten.
    """
    edits: list[JudgeEdit] = []
    added: list[str] = []
    restore: dict[str, bytes | None] = {}
    whole_suite = False
    for file in change.files:
        base = change.base[file.path]
        found, tests = _classify(file.path, base, file.content)
        edits.extend(found)
        added.extend(tests)
        if _judges_existing(file.path, base, file.content, found):
            restore[file.path] = base
            whole_suite = whole_suite or not is_test_file(file.path)
    selectors: tuple[str, ...] = ()
    if restore:
        # new test files never join the base run: code they run at import could reach others
        restore |= {f.path: None for f in change.files if _is_new_test(f.path, change)}
        if not whole_suite:
            selectors = tuple(sorted(p for p, c in restore.items() if c is not None))
    return Judged(
        edits=tuple(edits), added_tests=tuple(added), restore=restore, selectors=selectors
    )


def _judges_existing(
    path: str, base: bytes | None, new: bytes | None, found: list[JudgeEdit]
) -> bool:
    """Whether the base-test run must put this path back: an edit of a test, a fixture or
    pytest's own configuration (not a suppression on a line, not lint or scanner settings)."""
    if _is_javascript(path):
        return False  # reported only: no JavaScript test run under the base versions
    rules = {e.rule for e in found if e.topic is Topic.TESTS and e.rule != SUPPRESSION_RULE}
    if rules and (base is not None or "conftest-changed" in rules):
        return True
    if CONFIG_RULE not in {e.rule for e in found}:
        return False
    name = PurePosixPath(path).name
    if name in SECTIONED_CONFIG:
        return judge_table_edit(base, new, tables=PYTEST_TABLES, path=path) is not None
    return name in PYTEST_CONFIG_FILES


def _is_new_test(path: str, change: DiffedChange) -> bool:
    return (
        change.base.get(path) is None
        and is_test_path(path)
        and not is_conftest(path)
        and path.endswith(".py")
    )


def _classify(
    path: str, base: bytes | None, new: bytes | None
) -> tuple[list[JudgeEdit], list[str]]:
    """The judge edits of one file and the tests it added."""
    found = list(suppressions_added(path, base, new))
    kind = next((k for k in WHOLE_FILE_JUDGES if k[0](path)), None)
    if kind is not None:
        _, rule, topic, what = kind
        return [*found, _whole_file(rule, path, base, new, topic, what)], []
    if PurePosixPath(path).name in SECTIONED_CONFIG:
        line = judge_table_edit(base, new, path=path)
        if line is not None:
            message = (
                f"the change edits tool configuration in {path} "
                "(a table that configures lint, tests or a scanner)"
            )
            found.append(JudgeEdit(rule=CONFIG_RULE, path=path, line=line, message=message,
                                   topic=Topic.CONFIG))  # fmt: skip
        return found, []
    if PurePosixPath(path).name == PACKAGE_JSON:
        manifest = package_json_judge_edit(base, new)
        if manifest is not None:
            message = (
                f"the change edits tool configuration in {path} "
                f"(what runs or configures its tests or lint: {manifest[1]})"
            )
            found.append(JudgeEdit(rule=CONFIG_RULE, path=path, line=manifest[0],
                                   message=message, topic=Topic.CONFIG))  # fmt: skip
        return found, []
    if is_test_path(path):
        edits, tests = _test_file(path, base, new)
        return [*found, *edits], tests
    return found, []


def _whole_file(
    rule: str, path: str, base: bytes | None, new: bytes | None, topic: Topic, what: str
) -> JudgeEdit:
    verb = "adds" if base is None else "deletes" if new is None else "edits"
    first = hunks(base, new)
    line = first[0].new_start if first and new is not None else 0
    return JudgeEdit(
        rule=rule, path=path, line=line, message=f"the change {verb} {what}: {path}", topic=topic
    )


def _test_file(
    path: str, base: bytes | None, new: bytes | None
) -> tuple[list[JudgeEdit], list[str]]:
    if new is None:
        if base is None:
            return [], []
        message = f"the change deletes the test file {path}"
        return [
            JudgeEdit(rule="test-deleted", path=path, line=0, message=message, topic=Topic.TESTS)
        ], []
    if not path.endswith(".py"):
        if base is None:
            return [], [path] if is_js_test_path(path) and path.endswith(JS_SUFFIXES) else []
        first = hunks(base, new)
        line = first[0].new_start if first else 0
        message = (
            f"the change edits the test file {path} (JavaScript tests are not compared by "
            "their syntax: any edit of an existing one counts)"
            if path.endswith(JS_SUFFIXES)
            else f"the change edits test data {path}: the tests compare against it"
        )
        return [
            JudgeEdit(
                rule="test-modified", path=path, line=line, message=message, topic=Topic.TESTS
            )
        ], []
    result = new_test_module(path, new) if base is None else compare_test_module(path, base, new)
    return [_from_test_edit(path, e) for e in result.edits], [f"{path}::{t}" for t in result.added]


def _from_test_edit(path: str, edit: TestEdit) -> JudgeEdit:
    return JudgeEdit(
        rule=edit.rule, path=path, line=edit.line, message=edit.message, topic=Topic.TESTS
    )


def suppressions_added(path: str, base: bytes | None, new: bytes | None) -> Iterator[JudgeEdit]:
    """A finding per suppression marker on a line the change added or changed.

    Lines are compared as a multiset of (marker, whitespace-collapsed text), so moving an
    existing `# noqa` line is not an addition, while changing the line it sits on is.
    """
    if new is None:
        return
    before = Counter(_marked_lines(base, path))
    for number, marker, text, topic in _marked_lines_at(new, path):
        if before[(marker, text)] > 0:
            before[(marker, text)] -= 1
            continue
        message = f"the change adds `{marker}` in {path}: {text[:160]}"
        yield JudgeEdit(rule=SUPPRESSION_RULE, path=path, line=number, message=message, topic=topic)


def _marked_lines(content: bytes | None, path: str) -> Iterator[tuple[str, str]]:
    for _, marker, text, _ in _marked_lines_at(content, path):
        yield marker, text


def _marked_lines_at(content: bytes | None, path: str) -> Iterator[tuple[int, str, str, Topic]]:
    markers = SUPPRESSIONS + (JS_SUPPRESSIONS if path.endswith(JS_SUPPRESSION_SUFFIXES) else ())
    for number, raw in enumerate((content or b"").splitlines(), start=1):
        line = raw.decode("utf-8", "replace")
        for marker, pattern, topic in markers:
            if pattern.search(line):
                yield number, marker, " ".join(line.split()), topic


def judge_table_edit(
    base: bytes | None,
    new: bytes | None,
    *,
    tables: tuple[str, ...] = JUDGE_TABLES,
    path: str = "pyproject.toml",
) -> int | None:
    """The line (1-based, new side; 0: the file was deleted) of the first edit of one of
    `tables` (name prefixes) in a `pyproject.toml` (compared as TOML data: the `tool.*`
    entries) or a `setup.cfg` (as INI: the others); None when none changed. A version that
    does not parse is an edit of the whole file (`configdiff`)."""
    if path.endswith(".toml"):
        tools = tuple(t.removeprefix("tool.") for t in tables if t.startswith("tool."))
        found = toml_judge_edit(base, new, tools)
        if found is None and _pytest_plugins_edited(base, new):
            return _first_line_naming(new, "pytest11")
        return found
    return ini_judge_edit(base, new, tuple(t for t in tables if not t.startswith("tool.")))


def _pytest_plugins(content: bytes | None) -> object:
    """`[project.entry-points.pytest11]` of a pyproject (the plugins pytest loads by itself)."""
    try:
        data = tomllib.loads((content or b"").decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return None
    project = data.get("project")
    points = project.get("entry-points") if isinstance(project, dict) else None
    return points.get("pytest11") if isinstance(points, dict) else None


def _pytest_plugins_edited(base: bytes | None, new: bytes | None) -> bool:
    return _pytest_plugins(base) != _pytest_plugins(new)


def _first_line_naming(content: bytes | None, word: str) -> int:
    for number, line in enumerate((content or b"").decode("utf-8", "replace").splitlines(), 1):
        if word in line:
            return number
    return 1 if content else 0
