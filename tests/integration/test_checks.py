"""The lint and tests checks and the gate, run in the real bubblewrap sandbox.

Setup installs pytest from the package index once per session (a shared uv cache); every
other command runs with no network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codefactory.domain import Change, CheckResult, FileChange
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.errors import SetupFailed
from codefactory.sandbox.port import Workspace
from codefactory.sandbox.setup import install_dependencies
from codefactory.verify import Gate, passed
from codefactory.verify.junit import parse_junit
from codefactory.verify.lint import RuffCheck
from codefactory.verify.tests import PytestCheck
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

DEV = {"requirements-dev.txt": "pytest\n"}
PASSING = {
    **DEV,
    "pyproject.toml": '[tool.ruff.lint]\nselect = ["F", "E"]\n',
    "pkg/__init__.py": "",
    "pkg/calc.py": "def add(a: int, b: int) -> int:\n    return a + b\n",
    "tests/test_calc.py": (
        "from pkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    ),
}

WorkspaceFactory = Callable[[dict[str, str]], BubblewrapWorkspace]


@pytest.fixture(scope="module")
def new_workspace(
    tmp_path_factory: pytest.TempPathFactory, uv_cache: Path
) -> Iterator[WorkspaceFactory]:
    """Provision a repository of `files` and install its requirements; destroyed at the end."""
    root = tmp_path_factory.mktemp("checks")
    sandbox = BubblewrapSandbox(root / "work", uv_cache)
    made: list[BubblewrapWorkspace] = []

    def provision(files: dict[str, str]) -> BubblewrapWorkspace:
        run_id = f"run{len(made)}"
        sha = make_repo(root / f"repo-{run_id}", files)
        workspace = sandbox.provision(repo=root / f"repo-{run_id}", commit=sha, run_id=run_id)
        made.append(workspace)
        try:
            install_dependencies(workspace)
        except SetupFailed as exc:
            pytest.skip(f"could not install the test repository's requirements: {exc}")
        return workspace

    yield provision
    for workspace in made:
        workspace.destroy()


@pytest.fixture(scope="module")
def shared(new_workspace: WorkspaceFactory) -> BubblewrapWorkspace:
    """One installed workspace with a passing suite, for the checks that leave it as it is."""
    return new_workspace(PASSING)


# lint


def test_lint_finds_unused_import_in_changed_file(new_workspace: WorkspaceFactory) -> None:
    workspace = new_workspace(PASSING)
    workspace.write_file("pkg/calc.py", b"import os\n\n\ndef add(a, b):\n    return a + b\n")
    workspace.write_file("pkg/clean.py", b"X = 1\n")

    result = RuffCheck().run(workspace, workspace.changes())

    assert not result.passed
    (finding,) = result.findings
    assert (finding.rule, finding.path, finding.line) == ("F401", "pkg/calc.py", 1)
    assert finding.check == "lint" and finding.blocking
    sarif = json.loads(result.evidence)
    assert result.evidence_name == "lint.sarif"
    assert sarif["runs"][0]["results"][0]["ruleId"] == "F401"
    assert sarif["runs"][0]["tool"]["driver"]["version"][0].isdigit()


def test_lint_uses_the_repository_config(new_workspace: WorkspaceFactory) -> None:
    files = {**PASSING, "pyproject.toml": '[tool.ruff.lint]\nselect = ["E"]\n'}
    workspace = new_workspace(files)
    workspace.write_file("pkg/calc.py", b"import os\n")

    result = RuffCheck().run(workspace, workspace.changes())

    assert result.passed, result.findings  # F401 is not selected by this repository


def test_the_repositorys_ruff_switches_cannot_blind_lint(new_workspace: WorkspaceFactory) -> None:
    """`fix = true` would rewrite the file in the sandbox and report nothing; an `exclude`
    would hide the changed file; `exit-zero`-like settings change nothing we read."""
    config = '[tool.ruff]\nfix = true\nexclude = ["pkg"]\n'
    workspace = new_workspace({**PASSING, "pyproject.toml": config})
    workspace.write_file("pkg/calc.py", b"import os\n\n\ndef add(a, b):\n    return a + b\n")

    verdicts = {RuffCheck().run(workspace, workspace.changes()).passed for _ in range(2)}

    assert verdicts == {False}  # found, and found again: nothing was fixed away
    assert b"import os" in (workspace.read_file("pkg/calc.py") or b"")


def test_lint_passes_a_clean_change(shared: BubblewrapWorkspace) -> None:
    change = _change_of(shared, "pkg/calc.py")

    result = RuffCheck().run(shared, change)

    assert result.passed
    assert result.findings == ()


def test_lint_without_python_changes_passes_and_says_so(shared: BubblewrapWorkspace) -> None:
    result = RuffCheck().run(shared, Change(files=()))

    assert result.passed
    assert result.summary == "no Python files changed"


def test_lint_that_cannot_run_fails(new_workspace: WorkspaceFactory) -> None:
    workspace = new_workspace({**PASSING, "pyproject.toml": "[tool.ruff]\nline-length = 'x'\n"})

    result = RuffCheck().run(workspace, _change_of(workspace, "pkg/calc.py"))

    assert not result.passed
    (finding,) = result.findings
    assert finding.rule == "lint-could-not-run"
    assert "ruff exited 2" in finding.message


# tests


def test_tests_pass_on_a_passing_suite(shared: BubblewrapWorkspace) -> None:
    result = PytestCheck().run(shared, Change(files=()))

    assert result.passed, result.findings
    assert result.evidence_name == "junit.xml"
    assert parse_junit(result.evidence).tests == 1
    assert shared.changes().is_empty  # the report stays out of the change


def test_tests_fail_naming_the_failing_test(new_workspace: WorkspaceFactory) -> None:
    workspace = new_workspace(PASSING)
    workspace.write_file(
        "tests/test_more.py",
        b"from pkg.calc import add\n\n\ndef test_wrong():\n    assert add(2, 2) == 5, 'bad sum'\n",
    )

    result = PytestCheck().run(workspace, workspace.changes())

    assert not result.passed
    (finding,) = result.findings
    assert finding.rule == "test-failed"
    assert finding.path == "tests/test_more.py"
    assert finding.line == 4
    assert finding.message.startswith("tests/test_more.py::test_wrong: AssertionError: bad sum")
    report = parse_junit(result.evidence)
    assert (report.tests, report.failures) == (2, 1)


def test_a_collection_error_fails_naming_the_module(new_workspace: WorkspaceFactory) -> None:
    workspace = new_workspace({**PASSING, "tests/test_broken.py": "import no_such_module\n"})

    result = PytestCheck().run(workspace, Change(files=()))

    assert not result.passed
    (finding,) = result.findings
    assert finding.rule == "tests-could-not-run"  # pytest ran nothing: never a pass
    assert "pytest could not collect tests/test_broken.py" in finding.message


def test_a_repository_without_tests_does_not_pass(new_workspace: WorkspaceFactory) -> None:
    workspace = new_workspace({**DEV, "app.py": "X = 1\n"})

    result = PytestCheck().run(workspace, Change(files=()))

    assert not result.passed
    assert [f.rule for f in result.findings] == ["no-tests"]
    assert parse_junit(result.evidence).tests == 0


def test_a_suite_over_its_time_limit_fails(new_workspace: WorkspaceFactory) -> None:
    slow = "import time\n\n\ndef test_slow():\n    time.sleep(60)\n"
    workspace = new_workspace({**DEV, "tests/test_slow.py": slow})

    result = PytestCheck(timeout_s=1.5).run(workspace, Change(files=()))

    assert not result.passed
    (finding,) = result.findings
    assert finding.rule == "tests-timed-out"
    assert "1.5 s" in finding.message
    assert parse_junit(result.evidence).failed[0].name == "tests-timed-out"


def test_missing_pytest_means_could_not_run(new_workspace: WorkspaceFactory) -> None:
    # a repository that installs its dependencies itself (and forgot pytest): the detected
    # plan would otherwise add pytest for a project with tests
    config = '[setup]\nreplace = true\ncommands = ["true"]\n'
    workspace = new_workspace(
        {"tests/test_a.py": "def test_a():\n    pass\n", ".codefactory/config.toml": config}
    )

    result = PytestCheck().run(workspace, Change(files=()))

    assert not result.passed
    (finding,) = result.findings
    assert finding.rule == "tests-could-not-run"
    assert "pytest is not installed" in finding.message
    assert parse_junit(result.evidence).errors == 1
    assert "No module named pytest" in result.evidence  # the reason, kept in the evidence


# gate


class ExplodingCheck:
    name = "explodes"

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        raise RuntimeError("the scanner's database is missing")


def test_gate_turns_a_raising_check_into_a_failed_result(shared: BubblewrapWorkspace) -> None:
    gate = Gate([ExplodingCheck(), RuffCheck()])

    crashed, lint = gate.run(shared, _change_of(shared, "pkg/calc.py"))

    assert (crashed.check, crashed.passed) == ("explodes", False)
    (finding,) = crashed.findings
    assert finding.rule == "check-crashed"
    assert "RuntimeError: the scanner's database is missing" in finding.message
    assert crashed.evidence_name == "explodes.sarif"
    assert json.loads(crashed.evidence)["runs"][0]["results"][0]["ruleId"] == "check-crashed"
    assert lint.passed  # the next check still ran
    assert not passed([crashed, lint])
    assert passed([lint])
    assert not passed([])


def _change_of(workspace: Workspace, path: str) -> Change:
    """A change that names `path` with its current content, as if the engine had rewritten it."""
    return Change(files=(FileChange(path=path, content=workspace.read_file(path)),))
