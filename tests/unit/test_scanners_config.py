"""The pure parts of the scanners and the tests check: the repository's bandit rule selection,
bandit's report read with coverage, ruff's target version, the test command, interpreter
requirements (PEP 440), and the error line of a JUnit case."""

from __future__ import annotations

import json

import pytest

from codefactory.domain import ExecResult
from codefactory.projects.model import Project, PythonProject, RepositoryConfig
from codefactory.verify.bandit_config import read_selection
from codefactory.verify.cache import MemoryVerifyCache
from codefactory.verify.junit import error_line, parse_junit
from codefactory.verify.lint import RuffCheck, target_version_options
from codefactory.verify.port import ProjectCheck
from codefactory.verify.sast import SastCheck, parse_bandit
from codefactory.verify.selection import Selection
from codefactory.verify.suite_command import admits, interpreter_mismatch, is_pytest, suite_command
from codefactory.verify.tests import (
    PytestCheck,
    pytest_arguments,
    recording_arguments,
    restricted,
)


class Files:
    """A `FileSource` of a few named files."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def paths(self) -> list[str]:
        return sorted(self.files)

    def read(self, path: str) -> bytes | None:
        text = self.files.get(path)
        return None if text is None else text.encode()

    def is_link(self, path: str) -> bool:
        return False


def test_the_rule_selection_of_pyproject_and_dot_bandit_is_merged() -> None:
    selection = read_selection(
        Files(
            {
                "pyproject.toml": '[tool.bandit]\nskips = ["B101"]\nexclude_dirs = ["src"]\n',
                ".bandit": "[bandit]\nskips = B311, B404\nexclude = src\ntargets = nothing\n",
            }
        )
    )
    assert selection.skips == {"B101", "B311", "B404"} and not selection.tests
    assert selection.bandit_args() == ["-s", "B101,B311,B404"]
    assert not selection.allows("B404") and selection.allows("B602")
    assert "skipping B101, B311, B404" in selection.describe()


def test_tests_select_and_nothing_configured_selects_everything() -> None:
    only = read_selection(Files({"pyproject.toml": '[tool.bandit]\ntests = ["B602"]\n'}))
    assert only.allows("B602") and not only.allows("B101")
    assert only.bandit_args() == ["-t", "B602"]
    none = read_selection(Files({"pyproject.toml": "[tool.ruff]\nfix = true\n"}))
    assert none.allows("B101") and none.bandit_args() == [] and none.describe() == ""


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"pyproject.toml": '[tool.bandit]\nskips = ["shell"]\n'}, "'shell' is not a bandit"),
        ({"pyproject.toml": "[tool.bandit]\nskips = 3\n"}, "3 is not a list"),
        ({"pyproject.toml": "[tool.bandit\n"}, "cannot be parsed"),
        ({".bandit": "skips = B101\n"}, "cannot be parsed"),
    ],
)
def test_an_unreadable_selection_is_ignored_and_named(files: dict[str, str], problem: str) -> None:
    selection = read_selection(Files(files))
    assert selection.allows("B101") and selection.bandit_args() == []
    assert "the repository's bandit selection was ignored" in selection.describe()
    assert problem in selection.describe()


def _bandit(report: dict[str, object], exit_code: int = 0) -> ExecResult:
    return ExecResult(
        command=("bandit",),
        exit_code=exit_code,
        stdout=json.dumps(report),
        stderr="",
        duration_s=0.1,
    )


def test_a_file_missing_from_bandit_s_report_is_unscanned() -> None:
    report = {"results": [], "errors": [], "metrics": {"./a.py": {}, "_totals": {}}}
    findings, unscanned = parse_bandit(_bandit(report), ["a.py", "b.py"])
    assert findings == []
    assert [(f.rule, f.path) for f in unscanned] == [("sast-file-unscanned", "b.py")]
    assert "missing from bandit's report" in unscanned[0].message


def test_a_file_bandit_could_not_parse_is_not_reported_twice() -> None:
    report = {
        "results": [],
        "errors": [{"filename": "./b.py", "reason": "syntax error while parsing AST from file"}],
        "metrics": {"./a.py": {}, "./b.py": {}, "_totals": {}},
    }
    _, unscanned = parse_bandit(_bandit(report), ["a.py", "b.py"])
    assert [f.path for f in unscanned] == ["b.py"]


def test_ruff_gets_the_project_s_target_version_only() -> None:
    assert target_version_options("py312") == ["--target-version", "py312"]
    assert target_version_options(None) == []
    assert target_version_options("py312; rm -rf /") == []


def test_the_repository_config_names_the_test_command() -> None:
    default = suite_command(Project())
    assert default.argv == ("python", "-m", "pytest") and default.pytest and not default.source
    config = RepositoryConfig(
        test_command=("pytest", "-x"), test_paths=("tests/unit",), source=".codefactory/config.toml"
    )
    custom = suite_command(Project(config=config))
    assert custom.pytest and custom.paths == ("tests/unit",)
    assert custom.source == ".codefactory/config.toml"
    assert pytest_arguments(custom) == ["-x"]
    assert pytest_arguments(default) == []
    assert not suite_command(Project(config=RepositoryConfig(test_command=("make", "test")))).pytest


@pytest.mark.parametrize(
    ("argv", "pytest_like"),
    [
        (("pytest",), True),
        (("/env/bin/py.test", "-q"), True),
        (("python3.12", "-m", "pytest"), True),
        (("python", "-m", "unittest"), False),
        (("tox", "-e", "py312"), False),
        ((), False),
    ],
)
def test_pytest_is_recognised(argv: tuple[str, ...], pytest_like: bool) -> None:
    assert is_pytest(argv) is pytest_like


@pytest.mark.parametrize(
    ("wanted", "version", "admitted"),
    [
        (">=3.12", "3.11.2", False),
        (">=3.12", "3.12.1", True),
        (">=3.9,<3.12", "3.12.0", False),
        ("~=3.10", "3.13.1", True),
        ("3.12", "3.12.7", True),
        ("3.12", "3.11.2", False),
        ("3.12.*", "3.12.1", True),
        ("3.12.1", "3.12.2", True),
        ("3.12.1", "3.13.0", False),
        ("not a specifier", "3.11.2", True),
    ],
)
def test_interpreter_requirements_follow_pep_440(wanted: str, version: str, admitted: bool) -> None:
    assert admits(wanted, version) is admitted


def test_an_interpreter_mismatch_names_the_file_that_asked() -> None:
    python = PythonProject(
        layout="pep621", python=">=3.12", python_source="pyproject.toml requires-python"
    )
    message = interpreter_mismatch(Project(python=python), "3.11.2")
    assert message == (
        "interpreter mismatch: the project requires Python >=3.12 (pyproject.toml "
        "requires-python), but /env runs Python 3.11.2"
    )
    assert interpreter_mismatch(Project(python=python), "3.12.1") == ""
    assert interpreter_mismatch(Project(), "3.11.2") == ""


COLLECTION_ERROR = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest"
 errors="1" failures="0" skipped="0" tests="1"><testcase classname="" name="tests.test_broken"
 time="0.000"><error message="collection failure">ImportError while importing test module
 '/workspace/tests/test_broken.py'.
Traceback:
tests/test_broken.py:1: in &lt;module&gt;
    import no_such_module
E   ModuleNotFoundError: No module named 'no_such_module'</error></testcase></testsuite>
</testsuites>"""


def test_a_collection_error_names_its_module_and_error() -> None:
    [case] = parse_junit(COLLECTION_ERROR).failed
    assert case.collection_error
    assert case.module == "tests/test_broken.py"
    assert case.detail == "ModuleNotFoundError: No module named 'no_such_module'"


def test_the_error_line_without_pytest_s_marker() -> None:
    text = "Traceback (most recent call last):\n  ...\nImportError: cannot import name 'x'\n"
    assert error_line(text) == "ImportError: cannot import name 'x'"
    assert error_line("all fine\n") == ""


def test_a_selection_is_kept_to_the_test_paths() -> None:
    selection = Selection(
        full=False,
        reasons=("a changed",),
        selectors=("tests/unit/test_a.py::test_a", "tests/slow/test_b.py::test_b"),
        suite_size=9,
    )
    kept = restricted(selection, ("tests/unit/",))
    assert kept.selectors == ("tests/unit/test_a.py::test_a",) and not kept.full
    assert restricted(selection, ()) == selection
    outside = restricted(selection, ("tests/other",))
    assert outside.full and "configured test paths" in outside.reasons[0]


def test_the_base_is_recorded_without_stopping_at_a_failure() -> None:
    args = ["-x", "-p", "pytest_asyncio", "--maxfail", "2", "--maxfail=3", "--lf", "-q"]
    assert recording_arguments(args) == ["-p", "pytest_asyncio", "-q"]


def test_a_bound_check_reads_the_gate_s_project_and_shares_what_it_remembers() -> None:
    project = Project(config=RepositoryConfig(test_command=("make", "test")))
    for check in (RuffCheck(), SastCheck(), PytestCheck(cache=MemoryVerifyCache())):
        bound = check.for_project(project)
        assert isinstance(check, ProjectCheck) and bound is not check
        assert bound.project_of(None) is project  # type: ignore[arg-type]  # nothing detected
    tests = PytestCheck(cache=MemoryVerifyCache())
    tests.for_project(project).record_failed("abc123", "the base suite hung")
    assert tests.recorded("abc123")  # not recorded again at the next round's binding
