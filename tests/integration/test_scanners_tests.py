"""The tests check runs the suite the way the repository config says, and its summary says why
a suite could not run, for real in the sandbox.

One workspace has pytest installed by the setup phase (shared uv cache); each test writes the
repository config it needs. Another has a bare `/env` (no pytest), for what a missing pytest
and an unsupported interpreter look like.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.domain import Change, CheckResult
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.errors import SetupFailed
from codefactory.sandbox.layout import ENV_DIR, UV
from codefactory.sandbox.port import Phase
from codefactory.sandbox.setup import install_dependencies
from codefactory.verify.cache import CacheKey, MemoryVerifyCache, findings_from_json
from codefactory.verify.junit import parse_junit
from codefactory.verify.suite_command import PYTEST_MISSING
from codefactory.verify.testmap import TestMap
from codefactory.verify.tests import MAP, PytestCheck
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

CONFIG = ".codefactory/config.toml"
REPO = {
    "requirements-dev.txt": "pytest\n",
    "pkg/__init__.py": "",
    "pkg/calc.py": "def add(a, b):\n    return a + b\n",
    "tests/unit/test_calc.py": (
        "from pkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    ),
    "tests/other/test_known_bug.py": "def test_known_bug():\n    assert 1 == 2\n",
    "run_suite.py": "import sys\n\nprint('3 of 9 checks failed')\nsys.exit(3)\n",
}


@pytest.fixture(scope="module")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, uv_cache: Path
) -> Iterator[BubblewrapSandbox]:
    made = BubblewrapSandbox(tmp_path_factory.mktemp("suite") / "work", uv_cache)
    yield made
    made.close()


@pytest.fixture(scope="module")
def installed(
    sandbox: BubblewrapSandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BubblewrapWorkspace]:
    repo = tmp_path_factory.mktemp("repo-installed")
    make_repo(repo, REPO)
    workspace = sandbox.provision(repo=repo, commit="HEAD", run_id="installed")
    try:
        install_dependencies(workspace)
    except SetupFailed as exc:
        workspace.destroy()
        pytest.skip(f"could not install the test repository's requirements: {exc}")
    yield workspace
    workspace.destroy()


@pytest.fixture(scope="module")
def bare(
    sandbox: BubblewrapSandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BubblewrapWorkspace]:
    """`/env` is a virtualenv of the host's Python with nothing installed."""
    repo = tmp_path_factory.mktemp("repo-bare")
    make_repo(repo, {"tests/test_a.py": "def test_a():\n    pass\n"})
    workspace = sandbox.provision(repo=repo, commit="HEAD", run_id="bare")
    venv = [UV, "venv", "--quiet", "--python", "/usr/bin/python3", ENV_DIR]
    assert workspace.exec(venv, phase=Phase.SETUP, timeout_s=120).ok
    yield workspace
    workspace.destroy()


def _run(workspace: BubblewrapWorkspace, config: str) -> CheckResult:
    """The check's result after writing the repository config `config`."""
    workspace.write_file(CONFIG, config.encode())
    return PytestCheck(timeout_s=120).run(workspace, Change(files=()))


def test_test_paths_restrict_collection(installed: BubblewrapWorkspace) -> None:
    result = _run(installed, '[test]\npaths = ["tests/unit"]\n')

    assert result.passed, result.summary  # tests/other's failing test is not collected
    assert result.summary.endswith("1 passed, 0 skipped")
    assert parse_junit(result.evidence).tests == 1


def test_a_command_that_is_not_pytest_is_judged_by_its_exit_status(
    installed: BubblewrapWorkspace,
) -> None:
    result = _run(installed, '[test]\ncommand = ["python", "run_suite.py"]\n')

    assert not result.passed
    [finding] = result.findings
    assert finding.rule == "test-command-failed"
    assert "`python run_suite.py` exited 3" in result.summary
    assert "3 of 9 checks failed" in result.summary  # the output's tail
    assert "is not pytest" in result.summary  # why the whole command ran

    passing = _run(installed, '[test]\ncommand = ["python", "-c", "print(1)"]\n')
    assert passing.passed, passing.summary


def test_the_base_of_each_command_is_recorded_the_same_way(
    installed: BubblewrapWorkspace,
) -> None:
    commit = installed.base_commit
    installed.write_file(CONFIG, b'[test]\ncommand = ["python", "run_suite.py"]\n')
    cache = MemoryVerifyCache()
    check = PytestCheck(timeout_s=120, cache=cache)
    check.record_base(installed)
    key = CacheKey(check="tests", commit=commit, digest=check.config_digest())
    [base] = findings_from_json(cache.get(key) or "")
    # the same failure after the change has the same fingerprint: the gate reports it unchanged
    [now] = check.run(installed, Change(files=())).findings
    assert now.rule == base.rule == "test-command-failed"
    assert now.fingerprint == base.fingerprint
    assert check.recorded(commit)  # no map for a command that is not pytest, and it says so

    installed.write_file(CONFIG, b'[test]\npaths = ["tests/unit"]\n')
    cache = MemoryVerifyCache()
    check = PytestCheck(timeout_s=120, cache=cache)
    check.record_base(installed)
    recorded = cache.get(CacheKey(check=MAP, commit=commit, digest=check.config_digest()))
    assert recorded is not None
    assert list(TestMap.from_text(recorded).tests) == ["tests/unit/test_calc.py::test_add"]


def test_a_test_command_that_is_not_found_is_named(installed: BubblewrapWorkspace) -> None:
    result = _run(installed, '[test]\ncommand = ["nosetests", "-v"]\n')

    assert not result.passed
    [finding] = result.findings
    assert finding.rule == "tests-could-not-run"
    assert "the test command `nosetests -v` (set in .codefactory/config.toml)" in result.summary
    assert "was not found" in result.summary


def test_a_collection_error_is_named_in_the_summary(installed: BubblewrapWorkspace) -> None:
    installed.write_file("tests/broken/test_broken.py", b"import no_such_module\n")

    result = _run(installed, '[test]\npaths = ["tests/broken"]\n')

    assert not result.passed
    assert "pytest could not collect tests/broken/test_broken.py" in result.summary
    assert "ModuleNotFoundError: No module named 'no_such_module'" in result.summary
    # pytest stops at a collection error: the suite judged nothing, so the check could not
    # run (never compared with the base, whose suite may be broken the same way)
    [finding] = result.findings
    assert finding.rule == "tests-could-not-run"
    assert "tests/broken/test_broken.py" in finding.message


def test_pytest_missing_is_named_in_the_summary(bare: BubblewrapWorkspace) -> None:
    result = PytestCheck(timeout_s=60).run(bare, Change(files=()))

    assert not result.passed
    assert PYTEST_MISSING in result.summary
    assert "No module named pytest" in result.evidence  # the run's own output


def test_an_interpreter_the_project_does_not_support_is_named(
    bare: BubblewrapWorkspace,
) -> None:
    bare.write_file(
        "pyproject.toml", b'[project]\nname = "p"\nversion = "1"\nrequires-python = ">=3.99"\n'
    )
    result = PytestCheck(timeout_s=60).run(bare, Change(files=()))

    assert not result.passed
    assert (
        "interpreter mismatch: the project requires Python >=3.99 "
        "(pyproject.toml requires-python), but /env runs Python 3." in result.summary
    ), result.summary
