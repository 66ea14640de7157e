"""What judges a change, however it is spelled: TOML, INI and JSON read as the tools read them,
and JavaScript's tests, tool configuration and inline suppressions."""

from __future__ import annotations

import json

import pytest

from codefactory.domain import FileChange
from codefactory.verify.diff import DiffedChange
from codefactory.verify.judges import (
    Judged,
    Topic,
    is_js_test_path,
    is_test_path,
    judge_edits,
    judge_table_edit,
    suppressions_added,
)

PYPROJECT = b"""[project]
name = "svc"
dependencies = ["idna==3.6"]

[tool.ruff]
line-length = 100

[tool.pytest.ini_options]
addopts = "-q"
"""


def judged(path: str, base: bytes | None, new: bytes | None) -> Judged:
    return judge_edits(DiffedChange(files=(FileChange(path=path, content=new),), base={path: base}))


def found(result: Judged) -> list[tuple[str, int]]:
    return [(e.rule, e.line) for e in result.edits]


NO_RUFF = PYPROJECT.replace(b"[tool.ruff]\nline-length = 100\n\n", b"")


@pytest.mark.parametrize(
    ("addition", "line"),
    [
        (b'\n[tool]\nruff = { lint = { ignore = ["F401"] } }\n', 9),  # the red team's F4
        (b'\n[tool]\nruff.lint.ignore = ["F401"]\n', 9),
        (b'\n[ tool . ruff . lint ]\nignore = ["F401"]\n', 8),
        (b'\n["tool".ruff.lint]\nignore = ["F401"]\n', 8),
        (b'\n[tool."ruff".lint]\nignore = ["F401"]\n', 8),
        (b"\n[tool.'ruff'.lint]\nignore = ['F401']\n", 8),
    ],
)
def test_every_toml_spelling_of_a_judge_table_is_one(addition: bytes, line: int) -> None:
    result = judged("pyproject.toml", NO_RUFF, NO_RUFF + addition)
    assert found(result) == [("tool-config-changed", line)]
    assert result.edits[0].topic is Topic.CONFIG and not result.needs_base_tests


def test_a_table_extended_where_toml_forbids_it_is_a_whole_file_edit() -> None:
    # `ruff.lint` under `[tool]` after `[tool.ruff]`: no TOML parser reads it
    new = PYPROJECT + b'\n[tool]\nruff.lint.ignore = ["F401"]\n'
    assert found(judged("pyproject.toml", PYPROJECT, new)) == [("tool-config-changed", 10)]


def test_a_root_dotted_key_before_any_table_is_a_judge_edit() -> None:
    new = b'tool.ruff.lint.ignore = ["F401"]\n' + PYPROJECT
    assert found(judged("pyproject.toml", PYPROJECT, new)) == [("tool-config-changed", 1)]
    # same data, other spelling: no edit (the tools read the same configuration)
    respelled = PYPROJECT.replace(b"[tool.ruff]\nline-length = 100\n", b"")
    respelled = respelled.replace(b"[project]", b"tool.ruff.line-length = 100\n\n[project]")
    assert judged("pyproject.toml", PYPROJECT, respelled).edits == ()


@pytest.mark.parametrize(
    "addition",
    [
        b"\n[tool]\npytest.ini_options.addopts = \"-k 'not test_add'\"\n",
        b"\n[tool]\npytest = { ini_options = { addopts = \"-k 'not test_add'\" } }\n",
        b'\n["tool"."pytest_env"]\nSKIP_SLOW = "1"\n',
    ],
)
def test_a_respelled_pytest_table_puts_the_base_configuration_back(addition: bytes) -> None:
    base = PYPROJECT.replace(b'[tool.pytest.ini_options]\naddopts = "-q"\n', b"")
    result = judged("pyproject.toml", base, base + addition)
    assert [e.rule for e in result.edits] == ["tool-config-changed"]
    assert result.restore == {"pyproject.toml": base} and result.selectors == ()


def test_packaging_edits_in_any_spelling_are_not_judge_edits() -> None:
    new = PYPROJECT + b'\n[tool]\npoetry = { name = "svc" }\n'
    assert judged("pyproject.toml", PYPROJECT, new).edits == ()
    # which packages the tests import is a judge: a package map can point them at a copy
    shadow = PYPROJECT + b'\n[tool]\nsetuptools.packages = ["svc"]\n'
    assert [e.rule for e in judged("pyproject.toml", PYPROJECT, shadow).edits] == [
        "tool-config-changed"
    ]
    bump = PYPROJECT.replace(b"idna==3.6", b"idna==3.7")
    assert judge_table_edit(PYPROJECT, bump) is None


def test_a_pyproject_that_does_not_parse_is_a_whole_file_edit() -> None:
    broken = PYPROJECT.replace(b"[project]", b"[project")
    assert found(judged("pyproject.toml", PYPROJECT, broken)) == [("tool-config-changed", 1)]
    # an unparseable base too: what a tool made of it cannot be told
    assert judge_table_edit(broken, PYPROJECT) == 1
    assert judge_table_edit(PYPROJECT, None) == 0  # deleted with its judge tables
    assert judge_table_edit(b"[project]\nname = 'x'\n", None) is None


SETUP_CFG = (
    b"[metadata]\nname = svc\n\n[tool:pytest]\naddopts = -q\n\n[flake8]\nmax-line-length = 100\n"
)


@pytest.mark.parametrize(
    "addition",
    [
        b"\n[flake8]x\nextend-ignore = E501\n",  # configparser reads up to the last `]`
        b"\n[ flake8 ]\nextend-ignore = E501\n",
        b"\n[mypy-svc.*]\nignore_errors = True\n",
        b"\n[coverage:report]\nfail_under = 0\n",
    ],
)
def test_setup_cfg_sections_as_configparser_reads_them(addition: bytes) -> None:
    base = SETUP_CFG.replace(b"\n[flake8]\nmax-line-length = 100\n", b"")
    result = judged("setup.cfg", base, base + addition)
    assert [e.rule for e in result.edits] == ["tool-config-changed"]
    assert result.edits[0].line > 5


def test_setup_cfg_default_section_reaches_every_judge_section() -> None:
    new = b"[DEFAULT]\nmax-line-length = 200\n\n" + SETUP_CFG.replace(
        b"max-line-length = 100\n", b""
    )
    assert [e.rule for e in judged("setup.cfg", SETUP_CFG, new).edits] == ["tool-config-changed"]
    metadata = SETUP_CFG.replace(b"name = svc", b"name = svc\nversion = 2")
    assert judged("setup.cfg", SETUP_CFG, metadata).edits == ()
    broken = b"addopts = -x\n" + SETUP_CFG  # no section header: configparser refuses it
    assert found(judged("setup.cfg", SETUP_CFG, broken)) == [("tool-config-changed", 1)]


@pytest.mark.parametrize(
    "name", ["pytest.toml", ".pytest.toml", ".pytest.ini", "pyrightconfig.json"]
)
def test_newer_whole_file_configurations(name: str) -> None:
    result = judged(name, None, b"[pytest]\naddopts = '-k not slow'\n")
    assert [e.rule for e in result.edits] == ["tool-config-changed"]


# --- JavaScript --------------------------------------------------------------------------

EVEN = b"function isEven(n) {\n  return n % 2 === 0;\n}\n\nmodule.exports = { isEven };\n"
EVEN_TEST = (
    b"const test = require('node:test');\nconst assert = require('node:assert');\n"
    b"const { isEven } = require('./even');\n\n"
    b"test('even numbers', () => {\n  assert.ok(isEven(4));\n  assert.ok(!isEven(3));\n});\n"
)


@pytest.mark.parametrize(
    ("line", "marker", "topic"),
    [
        (b"/* eslint-disable */", "eslint-disable", Topic.CONFIG),
        (b"// eslint-disable-next-line no-unused-vars", "eslint-disable", Topic.CONFIG),
        (b"const os = 1; // eslint-disable-line", "eslint-disable", Topic.CONFIG),
        (b"  eslint-disable no-undef", "eslint-disable", Topic.CONFIG),  # inside /* ... */
        (b'/* eslint no-unused-vars: "off" */', "eslint rule comment", Topic.CONFIG),
        (b"// @ts-ignore", "@ts-ignore", Topic.CONFIG),
        (b"// @ts-nocheck", "@ts-ignore", Topic.CONFIG),
        (b"// @ts-expect-error wrong type", "@ts-ignore", Topic.CONFIG),
        (b"/* istanbul ignore next */", "coverage ignore", Topic.CONFIG),
        (b"/* c8 ignore next 3 */", "coverage ignore", Topic.CONFIG),
        (b"/* v8 ignore start */", "coverage ignore", Topic.CONFIG),
        (b"test.skip('even numbers', () => {});", "skip", Topic.TESTS),
        (b"describe.skip('math', () => {});", "skip", Topic.TESTS),
        (b"it.skipIf(process.env.CI)('x', () => {});", "skip", Topic.TESTS),
        (b"xit('x', () => {});", "skip", Topic.TESTS),
        (b"xdescribe('x', () => {});", "skip", Topic.TESTS),
        (b"test.todo('later');", "skip", Topic.TESTS),
        (b"test('x', { skip: true }, () => {});", "skip", Topic.TESTS),
        (b"  t.skip('not today');", "skip", Topic.TESTS),
        (b"test.only('x', () => {});", "only", Topic.TESTS),
        (b"fit('x', () => {});", "only", Topic.TESTS),
    ],
)
def test_each_javascript_suppression_on_an_added_line(
    line: bytes, marker: str, topic: Topic
) -> None:
    [edit] = suppressions_added("src/even.js", EVEN, EVEN + line + b"\n")
    assert (edit.rule, edit.line, edit.topic) == ("suppression-added", 6, topic)
    assert f"`{marker}`" in edit.message


def test_javascript_markers_are_looked_for_in_javascript_only() -> None:
    python = b"def f(reader):\n    return reader.skip(3)\n"
    assert list(suppressions_added("svc/io.py", b"", python)) == []
    assert list(suppressions_added("src/io.ts", b"", b"return reader.skip(3);\n")) != []
    assert list(suppressions_added("src/opts.js", b"", b"const opts = { skipped: 1 };\n")) == []
    fitted = b"model.fit(data);\nconst exit = (code) => box.xit(code);\n"
    assert list(suppressions_added("src/model.js", b"", fitted)) == []


def test_the_red_team_javascript_edits_are_each_a_finding() -> None:
    """F5: none of these was a finding before."""
    cases = [
        ("src/even.js", EVEN, b"/* eslint-disable */\n" + EVEN, "suppression-added", 1),
        (
            "eslint.config.mjs",
            b'export default [{ rules: { "no-unused-vars": "error" } }];\n',
            b'export default [{ rules: { "no-unused-vars": "off" } }];\n',
            "tool-config-changed",
            1,
        ),
        (".eslintignore", None, b"src/\n", "tool-config-changed", 1),
        ("src/even.test.js", EVEN_TEST, EVEN_TEST.replace(b"  assert.ok(!isEven(3));\n", b""),
         "test-modified", 7),
        ("__tests__/even.js", EVEN_TEST, EVEN_TEST.replace(b"assert.ok(isEven(4))", b"isEven(4)"),
         "test-modified", 6),
        ("src/even.spec.ts", EVEN_TEST, None, "test-deleted", 0),
        ("jest.config.js", None, b"module.exports = { testMatch: [] };\n",
         "tool-config-changed", 1),
        ("vitest.config.ts", None, b"export default { test: { include: [] } };\n",
         "tool-config-changed", 1),
        (".mocharc.yml", None, b"spec: none\n", "tool-config-changed", 1),
        ("tsconfig.json", b'{"compilerOptions": {"strict": true}}\n',
         b'{"compilerOptions": {"strict": false}}\n', "tool-config-changed", 1),
        ("src/__snapshots__/even.test.js.snap", b"exports[`a`] = `1`;\n",
         b"exports[`a`] = `2`;\n", "test-modified", 1),
    ]  # fmt: skip
    for path, base, new, rule, line in cases:
        result = judged(path, base, new)
        assert found(result) == [(rule, line)], path
        # reported, never a pytest run of the base versions
        assert not result.needs_base_tests, path


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (".npmrc", b"script-shell=/bin/true\n"),  # `npm test` then exits 0, tests or not
        (".npmrc", b"node-options=--require ./patch-assert.js\n"),
        (".yarnrc.yml", b"enableScripts: false\n"),
    ],
)
def test_a_package_manager_configuration_that_changes_how_tests_run(
    name: str, content: bytes
) -> None:
    assert found(judged(name, None, content)) == [("tool-config-changed", 1)]


def test_new_javascript_tests_are_added_not_edits() -> None:
    result = judged("src/odd.test.js", None, EVEN_TEST)
    assert result.edits == () and result.added_tests == ("src/odd.test.js",)
    assert not result.needs_base_tests


def test_javascript_test_paths() -> None:
    for path in ("src/even.test.js", "a/b.spec.tsx", "__tests__/even.js", "test/x-test.mjs",
                 "src/__mocks__/fs.js", "test-utils.cjs", "even_test.ts"):  # fmt: skip
        assert is_js_test_path(path) and is_test_path(path), path
    for path in ("src/even.js", "src/testing.js", "src/contest.js", "docs/even.test.md"):
        assert not is_js_test_path(path), path
    assert not is_test_path("src/even.js")


PACKAGE = {
    "name": "svc",
    "version": "1.0.0",
    "scripts": {"build": "tsc", "test": "npm run unit", "unit": "node --test", "lint": "eslint ."},
    "dependencies": {"is-number": "7.0.0"},
}


def manifest(**edits: object) -> bytes:
    data = json.loads(json.dumps(PACKAGE))
    for key, value in edits.items():
        section, _, name = key.partition("__")
        if name:
            data[section][name] = value
        else:
            data[section] = value
    return json.dumps(data, indent=2).encode() + b"\n"


@pytest.mark.parametrize(
    ("edits", "what"),
    [
        ({"scripts__test": "true"}, "scripts.test"),
        ({"scripts__unit": "exit 0"}, "scripts.unit"),  # named by the test script
        ({"scripts__pretest": "rm -rf test"}, "scripts.pretest"),  # npm runs it before
        ({"scripts__lint": "true"}, "scripts.lint"),
        ({"eslintConfig": {"rules": {}}}, "eslintConfig"),
        ({"jest": {"testPathIgnorePatterns": ["src"]}}, "jest"),
    ],
)
def test_package_json_test_and_lint_configuration(edits: dict[str, object], what: str) -> None:
    base = manifest()
    [edit] = judged("package.json", base, manifest(**edits)).edits
    assert edit.rule == "tool-config-changed" and what in edit.message
    assert edit.line >= 1 and not judged("package.json", base, manifest(**edits)).needs_base_tests


def test_package_json_dependencies_build_and_spelling_are_not_judge_edits() -> None:
    base = manifest()
    assert judged("package.json", base, manifest(dependencies={"is-number": "7.0.1"})).edits == ()
    assert judged("package.json", base, manifest(scripts__build="tsc -p .")).edits == ()
    compact = json.dumps(PACKAGE).encode()  # reformatted: the same data
    assert judged("package.json", base, compact).edits == ()
    broken = judged("package.json", base, base.replace(b"{", b"", 1))
    assert [e.rule for e in broken.edits] == ["tool-config-changed"]
    assert "does not parse" in broken.edits[0].message
