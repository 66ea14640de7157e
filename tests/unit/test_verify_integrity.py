"""Which edits of a change touch what judges it: each rule on real-looking diffs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from codefactory.domain import ChangeKind, FileChange, TriggerEvent
from codefactory.verify.diff import DiffedChange
from codefactory.verify.integrity import IntegrityCheck, allowed_topics
from codefactory.verify.judges import (
    Judged,
    Topic,
    is_test_path,
    judge_edits,
    judge_table_edit,
    suppressions_added,
)
from codefactory.verify.port import Mandate, MandatedCheck
from codefactory.verify.testdiff import compare_test_module, new_test_module

TEST_CALLBACKS = b"""import pytest

from service.callbacks import callback_allowed


def test_https_allowed():
    assert callback_allowed("https://payments.example.com/notify")


def test_other_host_refused():
    assert not callback_allowed("https://attacker.example/notify")


class TestPorts:
    def test_default_port(self):
        assert callback_allowed("https://payments.example.com:443/x")

    def test_raises(self):
        with pytest.raises(ValueError):
            callback_allowed(None)
"""
PYPROJECT = b"""[project]
name = "svc"
dependencies = ["idna==3.6"]

[tool.ruff]
line-length = 100

[tool.pytest.ini_options]
addopts = "-q"
"""


def changed(path: str, base: bytes | None, new: bytes | None) -> DiffedChange:
    return DiffedChange(files=(FileChange(path=path, content=new),), base={path: base})


def judged(path: str, base: bytes | None, new: bytes | None) -> Judged:
    return judge_edits(changed(path, base, new))


def found(result: Judged) -> list[tuple[str, str, int]]:
    return [(e.rule, e.path, e.line) for e in result.edits]


PATH = "tests/test_callbacks.py"


def test_a_loosened_assertion_is_assertion_removed_at_the_test() -> None:
    new = TEST_CALLBACKS.replace(
        b'assert not callback_allowed("https://attacker', b'callback_allowed("https://attacker'
    )
    result = judged(PATH, TEST_CALLBACKS, new)
    assert found(result) == [("assertion-removed", PATH, 10)]
    assert (
        "assert not callback_allowed('https://attacker.example/notify')" in result.edits[0].message
    )
    assert result.restore == {PATH: TEST_CALLBACKS} and result.selectors == (PATH,)


def test_a_rewritten_pytest_raises_counts_as_an_assertion() -> None:
    new = TEST_CALLBACKS.replace(b"with pytest.raises(ValueError):", b"if True:")
    assert found(judged(PATH, TEST_CALLBACKS, new)) == [("assertion-removed", PATH, 18)]


def test_a_rewrite_that_keeps_the_assertions_is_test_modified() -> None:
    new = TEST_CALLBACKS.replace(
        b'    assert callback_allowed("https://payments.example.com/notify")',
        b'    url = "https://payments.example.com/notify"\n'
        b'    assert callback_allowed("https://payments.example.com/notify")',
    )
    assert found(judged(PATH, TEST_CALLBACKS, new)) == [("test-modified", PATH, 6)]


def test_a_deleted_test_function_and_a_deleted_file_are_test_deleted() -> None:
    new = TEST_CALLBACKS.replace(
        b'def test_other_host_refused():\n    assert not callback_allowed("https://attacker.example/notify")\n\n\n',
        b"",
    )
    [edit] = judged(PATH, TEST_CALLBACKS, new).edits
    assert (edit.rule, edit.topic) == ("test-deleted", Topic.TESTS)
    assert "test_other_host_refused" in edit.message
    whole = judged(PATH, TEST_CALLBACKS, None)
    assert found(whole) == [("test-deleted", PATH, 0)] and whole.restore == {PATH: TEST_CALLBACKS}


def test_a_deleted_test_class_is_one_finding() -> None:
    new = TEST_CALLBACKS.split(b"class TestPorts")[0]
    [edit] = judged(PATH, TEST_CALLBACKS, new).edits
    assert edit.rule == "test-deleted" and "the test class `TestPorts`" in edit.message


def test_added_tests_are_no_finding_but_are_listed() -> None:
    new = (
        TEST_CALLBACKS
        + b'\n\ndef test_other_port_refused():\n    assert not callback_allowed("https://payments.example.com:8443/notify")\n'
    )
    result = judged(PATH, TEST_CALLBACKS, new)
    assert result.edits == () and not result.needs_base_tests
    assert result.added_tests == (f"{PATH}::test_other_port_refused",)
    fresh = judged(
        "tests/test_ports.py",
        None,
        b"from x import y\nCASES = [1, 2]\n\n\ndef test_y():\n    assert y()\n",
    )
    assert fresh.edits == () and fresh.added_tests == ("tests/test_ports.py::test_y",)


def test_moving_and_reformatting_tests_is_no_edit() -> None:
    head, ports = TEST_CALLBACKS.split(b"class TestPorts")
    new = (
        b"class TestPorts"
        + ports
        + b"\n\n"
        + head.replace(b'("https://attacker', b'(\n        "https://attacker')
    )
    assert judged(PATH, TEST_CALLBACKS, new).edits == ()


def test_a_shadowing_redefinition_is_test_modified() -> None:
    new = TEST_CALLBACKS + b"\n\ndef test_https_allowed():\n    pass\n"
    assert found(judged(PATH, TEST_CALLBACKS, new)) == [("test-modified", PATH, 23)]


def test_module_code_that_patches_the_code_under_test_is_reported() -> None:
    patch = b"\nimport service.callbacks\nservice.callbacks.callback_allowed = lambda url: True\n"
    assert found(judged(PATH, TEST_CALLBACKS, TEST_CALLBACKS + patch)) == [
        ("module-code-added", PATH, 23)
    ]
    fresh = new_test_module(
        "tests/test_zz.py", b"import service.callbacks as c\nc.callback_allowed = bool\n"
    )
    assert [(e.rule, e.line) for e in fresh.edits] == [("module-code-added", 2)]
    rebind = TEST_CALLBACKS + b"\nfrom fakes import callback_allowed\n"
    [edit] = judged(PATH, TEST_CALLBACKS, rebind).edits
    assert edit.rule == "test-modified" and "rebinds `callback_allowed`" in edit.message


def test_removed_module_code_is_test_modified_but_a_removed_import_is_not() -> None:
    base = b"import os\nimport sys\n\nsys.setrecursionlimit(50)\n\n\ndef test_x():\n    assert os\n"
    no_import = base.replace(b"import sys\n", b"").replace(b"sys.setrecursionlimit(50)\n", b"")
    [edit] = judged(PATH, base, no_import).edits
    assert edit.rule == "test-modified" and "sys.setrecursionlimit(50)" in edit.message
    assert judged(PATH, base, base.replace(b"import os\n", b"")).edits == ()


def test_a_test_module_that_no_longer_parses_is_test_modified() -> None:
    result = compare_test_module(PATH, TEST_CALLBACKS, TEST_CALLBACKS + b"\ndef broken(:\n")
    assert [(e.rule, e.line) for e in result.edits] == [("test-modified", 22)]
    nul = compare_test_module(PATH, TEST_CALLBACKS, TEST_CALLBACKS + b"\0")
    assert [e.rule for e in nul.edits] == ["test-modified"]


@pytest.mark.parametrize(
    ("line", "marker", "topic"),
    [
        (b"import os  # noqa: F401", "noqa", Topic.CONFIG),
        (b"import os  # ruff: noqa", "noqa", Topic.CONFIG),
        (b"subprocess.call(cmd, shell=True)  # nosec B602", "nosec", Topic.CONFIG),
        (b"x: int = f()  # type: ignore[assignment]", "type: ignore", Topic.CONFIG),
        (b"if debug:  # pragma: no cover", "pragma: no cover", Topic.CONFIG),
        (b'TOKEN = "abc"  # pragma: allowlist secret', "pragma: allowlist", Topic.CONFIG),
        (b'@pytest.mark.skip(reason="flaky")', "skip", Topic.TESTS),
        (b"@pytest.mark.skipif(True, reason='x')", "skip", Topic.TESTS),
        (b'pytestmark = pytest.mark.xfail(reason="later")', "xfail", Topic.TESTS),
        (b'    pytest.skip("not today")', "skip", Topic.TESTS),
        (b"@unittest.skip('x')", "skip", Topic.TESTS),
    ],
)
def test_each_suppression_marker_on_an_added_line(line: bytes, marker: str, topic: Topic) -> None:
    base = b"import subprocess\n\n\ndef f():\n    return 1\n"
    [edit] = suppressions_added("svc/app.py", base, base + line + b"\n")
    assert (edit.rule, edit.line, edit.topic) == ("suppression-added", 6, topic)
    assert f"`{marker}`" in edit.message


def test_an_existing_suppression_moved_or_kept_is_not_added_but_a_changed_line_is() -> None:
    base = b"import os  # noqa: F401\nimport sys\n"
    assert list(suppressions_added("a.py", base, b"import sys\nimport os  # noqa: F401\n")) == []
    [edit] = suppressions_added("a.py", base, b"import os, re  # noqa: F401\nimport sys\n")
    assert edit.line == 1
    assert list(suppressions_added("a.py", base, None)) == []


def test_only_judge_tables_of_pyproject_are_tool_configuration() -> None:
    bump = PYPROJECT.replace(b"idna==3.6", b"idna==3.7")
    assert judged("pyproject.toml", PYPROJECT, bump).edits == ()
    looser = PYPROJECT.replace(b"line-length = 100", b'line-length = 100\nignore = ["E501"]')
    ruff = judged("pyproject.toml", PYPROJECT, looser)
    assert found(ruff) == [("tool-config-changed", "pyproject.toml", 7)]
    assert not ruff.needs_base_tests  # ruff's table: the base tests would say nothing new
    addopts = PYPROJECT.replace(b'"-q"', b"\"-q -k 'not test_add'\"")
    pytest_table = judged("pyproject.toml", PYPROJECT, addopts)
    assert found(pytest_table) == [("tool-config-changed", "pyproject.toml", 9)]
    assert pytest_table.restore == {"pyproject.toml": PYPROJECT}
    assert pytest_table.selectors == ()  # the whole suite, under the base configuration
    removed = PYPROJECT.replace(b'[tool.pytest.ini_options]\naddopts = "-q"\n', b"")
    assert judge_table_edit(PYPROJECT, removed) is not None


def test_setup_cfg_sections_and_whole_config_files() -> None:
    cfg = b"[metadata]\nname = svc\n\n[tool:pytest]\naddopts = -q\n\n[flake8]\nmax-line=100\n"
    assert judged("setup.cfg", cfg, cfg.replace(b"name = svc", b"name = svc2")).edits == ()
    edit = judged("setup.cfg", cfg, cfg.replace(b"=100", b"=200"))
    assert found(edit) == [("tool-config-changed", "setup.cfg", 8)] and not edit.needs_base_tests
    for name in (
        "ruff.toml",
        ".ruff.toml",
        "pytest.ini",
        "tox.ini",
        ".bandit",
        ".pre-commit-config.yaml",
    ):
        assert [e.rule for e in judged(name, b"a = 1\n", b"a = 2\n").edits] == [
            "tool-config-changed"
        ]
    assert judged("pytest.ini", b"[pytest]\n", b"[pytest]\naddopts = -x\n").restore == {
        "pytest.ini": b"[pytest]\n"
    }


def test_conftest_and_waiver_files() -> None:
    added = judged(
        "tests/conftest.py", None, b"def pytest_collection_modifyitems(items):\n    items.clear()\n"
    )
    assert found(added) == [("conftest-changed", "tests/conftest.py", 1)]
    assert added.restore == {"tests/conftest.py": None}  # removed for the base-test run
    assert added.edits[0].topic is Topic.TESTS
    baseline = judged(".secrets.baseline", b"{}\n", b'{"results": {"a.py": []}}\n')
    assert found(baseline) == [("waiver-added", ".secrets.baseline", 1)]
    assert baseline.edits[0].topic is Topic.CONFIG and not baseline.needs_base_tests


def test_a_change_to_the_repository_config_changes_its_judges() -> None:
    # a change that skips its own tests, or swaps the test command for `true`, must not pass
    # as an ordinary edit: the gate reads the config from the changed tree
    config = b'[test]\ncommand = ["true"]\n\n[checks]\nskip = ["tests"]\n'
    added = judged(".codefactory/config.toml", None, config)
    assert found(added) == [("repository-config-changed", ".codefactory/config.toml", 1)]
    assert added.edits[0].topic is Topic.CONFIG  # blocking unless labelled config-change
    assert "checks skipped or added" in added.edits[0].message


def test_test_data_edits_and_new_test_files_in_a_base_run() -> None:
    change = DiffedChange(
        files=(
            FileChange(path="tests/data/expected.json", content=b'{"total": 4}\n'),
            FileChange(path="tests/test_extra.py", content=b"def test_x():\n    assert 1\n"),
            FileChange(path="svc/app.py", content=b"x = 1\n"),
        ),
        base={
            "tests/data/expected.json": b'{"total": 3}\n',
            "tests/test_extra.py": None,
            "svc/app.py": b"",
        },
    )
    result = judge_edits(change)
    assert found(result) == [("test-modified", "tests/data/expected.json", 1)]
    # data is not a test file: the whole suite runs, without the new test file
    assert result.restore == {
        "tests/data/expected.json": b'{"total": 3}\n',
        "tests/test_extra.py": None,
    }
    assert result.selectors == ()


def test_test_paths() -> None:
    assert is_test_path("tests/helpers.py") and is_test_path("pkg/test_x.py")
    assert is_test_path("x_test.py") and is_test_path("test/data.json")
    assert not is_test_path("pkg/testing.py") and not is_test_path("pkg/contest.py")


def test_a_base_version_unknown_is_an_error_not_a_guess() -> None:
    change = DiffedChange(files=(FileChange(path=PATH, content=b""),), base={})
    with pytest.raises(KeyError):
        judge_edits(change)


def ticket(labels: tuple[str, ...], body: str = "") -> TriggerEvent:
    return TriggerEvent(
        source="github", kind=ChangeKind.FIX_LINT, external_id="1", actor="a", repository="r",
        title="t", body=body, labels=labels, received_at=datetime.now(UTC), payload_digest="d",
    )  # fmt: skip


def test_only_labels_unlock_and_each_unlocks_its_topic() -> None:
    assert allowed_topics(Mandate.of(None)) == frozenset()
    assert (
        allowed_topics(Mandate.of(ticket(("bug",), body="labels: tests config-change")))
        == frozenset()
    )
    assert allowed_topics(Mandate.of(ticket((" Tests ",)))) == {Topic.TESTS}
    assert allowed_topics(Mandate.of(ticket(("test-change",)))) == {Topic.TESTS}
    assert allowed_topics(Mandate.of(ticket(("config-change", "tests")))) == {
        Topic.TESTS,
        Topic.CONFIG,
    }
    assert allowed_topics(Mandate(kind=ChangeKind.FIX_LINT)) == frozenset()  # a kind never does


def test_the_check_is_bound_to_a_mandate_by_the_gate() -> None:
    check = IntegrityCheck(timeout_s=7)
    assert isinstance(check, MandatedCheck)
    bound = check.under(Mandate(labels=frozenset({"tests"})))
    assert isinstance(bound, IntegrityCheck) and bound.timeout_s == 7
    assert bound.mandate.labels == {"tests"} and check.mandate == Mandate()
    assert bound.config_digest() != check.config_digest()


@pytest.mark.parametrize(
    "path",
    [".claude/settings.json", ".mcp.json", "opencode.json", ".opencode/plugin/p.js",
     "mini.yaml", ".codex/config.toml", "AGENTS.md", "CLAUDE.md",
     ".github/copilot-instructions.md"],
)  # fmt: skip
def test_coding_agent_configuration_is_a_judge_edit(path: str) -> None:
    """An engine that writes an agent's hooks, endpoints or instructions steers the next one."""
    result = judged(path, None, b'{"hooks": {}}\n')
    assert [edit.rule for edit in result.edits] == ["engine-config-changed"]
    assert "coding-agent configuration" in result.edits[0].message
    assert not judged("docs/AGENTS-guide.md", None, b"text\n").edits


def test_the_red_team_ruff_ignore_under_a_bare_tool_table_is_a_judge_edit() -> None:
    """F4: `[tool]` + `ruff = { lint = { ignore = [...] } }` beside an unused import was
    "no tool configuration edited"; the tables are now compared as TOML data."""
    base = PYPROJECT.replace(b"[tool.ruff]\nline-length = 100\n\n", b"")
    new = base + b'\n[tool]\nruff = { lint = { ignore = ["F401"] } }\n'
    change = DiffedChange(
        files=(
            FileChange(path="pyproject.toml", content=new),
            FileChange(path="svc/app.py", content=b"import os\n\nX = 1\n"),
        ),
        base={"pyproject.toml": base, "svc/app.py": b"X = 1\n"},
    )
    assert found(judge_edits(change)) == [("tool-config-changed", "pyproject.toml", 9)]


def test_what_decides_which_code_the_tests_load_is_a_judge() -> None:
    """Red team round 2: a pytest plugin registered as an entry point, a package map that
    points the tests at a shadow copy, a yarn or pnpm file that sets NODE_OPTIONS, and a
    `SkipTest` raised from source each changed the verdict without a finding."""
    base = b'[project]\nname = "m"\nversion = "1"\n'
    plugin = base + b'\n[project.entry-points.pytest11]\nok = "m_report"\n'
    assert found(judged("pyproject.toml", base, plugin)) == [
        ("tool-config-changed", "pyproject.toml", 5)
    ]
    shadow = base + b'\n[tool.setuptools]\npackage-dir = {"" = "shadow"}\n'
    assert [r for r, _, _ in found(judged("pyproject.toml", base, shadow))] == [
        "tool-config-changed"
    ]
    bump = b'[project]\nname = "m"\nversion = "1"\ndependencies = ["idna==3.7"]\n'
    assert found(judged("pyproject.toml", base, bump)) == []  # a dependency bump is no judge
    for name in (".env.yarn", "pnpm-workspace.yaml", ".pnpmfile.cjs"):
        assert [r for r, _, _ in found(judged(name, None, b"x\n"))] == ["tool-config-changed"]
    raised = judged("m.py", b"def f():\n    return 1\n",
                    b"import unittest\ndef f():\n    raise unittest.SkipTest('x')\n")  # fmt: skip
    assert "suppression-added" in [r for r, _, _ in found(raised)]
