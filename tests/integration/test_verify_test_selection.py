"""Test selection for real: the base commit's map recorded under coverage in the sandbox,
then only the tests that reach a change run; failures the base already had do not block.

The setup phase installs pytest from the package index once (a shared uv cache).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.domain import CheckResult
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.errors import SetupFailed
from codefactory.sandbox.port import Workspace
from codefactory.sandbox.setup import install_dependencies
from codefactory.verify.cache import MemoryVerifyCache
from codefactory.verify.gate import Gate
from codefactory.verify.junit import parse_junit
from codefactory.verify.tests import PytestCheck
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

CALC = (
    "def add(a, b):\n"
    "    return a + b\n\n\n"
    "def scale(x):\n"
    "    return x * 2\n\n\n"
    "def load():\n"
    '    return {"rate": 3}\n'
)
REPO = {
    "requirements-dev.txt": "pytest\n",
    "pkg/__init__.py": "",
    "pkg/calc.py": CALC,
    "tests/conftest.py": (
        "import pytest\n\nfrom pkg.calc import load\n\n\n"
        '@pytest.fixture(scope="module")\ndef config():\n    return load()\n'
    ),
    "tests/test_add.py": (
        "from pkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    ),
    "tests/test_scale.py": (
        "from pkg.calc import scale\n\n\ndef test_scale():\n    assert scale(2) == 4\n\n\n"
        "def test_known_bug():\n    assert scale(3) == 7\n"
    ),
    "tests/test_config.py": (
        'def test_rate(config):\n    assert config["rate"] == 3\n\n\n'
        "def test_rate_again(config):\n    assert config\n"
    ),
}


def setup(workspace: Workspace) -> object:
    try:
        return install_dependencies(workspace)
    except SetupFailed as exc:
        pytest.skip(f"could not install the test repository's requirements: {exc}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gate, Path, Workspace]]:
    root = tmp_path_factory.mktemp("selection")
    make_repo(root / "repo", REPO)
    sandbox = BubblewrapSandbox(root / "work", root / "uv-cache")
    cache = MemoryVerifyCache()  # the check keeps its map where the gate finds its baseline
    gate = Gate(
        [PytestCheck(timeout_s=120, cache=cache)], cache=cache, sandbox=sandbox, setup=setup
    )
    workspace: BubblewrapWorkspace = sandbox.provision(
        repo=root / "repo", commit="HEAD", run_id="change"
    )
    setup(workspace)
    yield gate, root / "repo", workspace
    workspace.destroy()


def judge(world: tuple[Gate, Path, Workspace], calc: str) -> CheckResult:
    gate, repo, workspace = world
    workspace.write_file("pkg/calc.py", calc.encode())
    [result] = gate.run(workspace, workspace.changes(), repo=repo)
    return result


def test_a_body_change_runs_only_the_tests_that_reach_it(
    world: tuple[Gate, Path, Workspace],
) -> None:
    result = judge(world, CALC.replace("return a + b", "return b + a"))
    assert result.passed, result.summary
    assert parse_junit(result.evidence).tests == 1
    assert 'codefactory.selection" value="selected' in result.evidence
    assert "tests/test_add.py::test_add" in result.evidence
    assert "pkg/calc.py::add changed: 1 test(s) ran it" in result.summary


def test_code_run_by_a_module_fixture_selects_every_test_using_it(
    world: tuple[Gate, Path, Workspace],
) -> None:
    result = judge(world, CALC.replace('"rate": 3', '"rate": 4'))
    assert not result.passed
    assert parse_junit(result.evidence).tests == 2  # test_rate and test_rate_again
    [finding] = [f for f in result.findings if f.blocking]
    assert "test_rate" in finding.message and finding.baseline_state == "new"


def test_a_failure_the_base_already_had_is_reported_not_blocking(
    world: tuple[Gate, Path, Workspace],
) -> None:
    result = judge(world, CALC.replace("return x * 2", "return x + x"))
    assert result.passed, result.summary
    [known] = result.findings
    assert "test_known_bug" in known.message
    assert (known.baseline_state, known.blocking) == ("unchanged", False)


def test_an_import_time_change_runs_the_whole_suite(
    world: tuple[Gate, Path, Workspace],
) -> None:
    result = judge(world, "RATE = 2\n\n\n" + CALC)
    assert parse_junit(result.evidence).tests == 5
    assert "whole suite (pkg/calc.py:1 runs at import time" in result.summary
    assert result.passed  # only the known bug fails, as at the base


def test_a_repository_without_tests_never_passes_even_against_its_base(tmp_path: Path) -> None:
    make_repo(tmp_path / "repo", {"requirements-dev.txt": "pytest\n", "app.py": "X = 1\n"})
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "uv-cache")
    cache = MemoryVerifyCache()
    gate = Gate([PytestCheck(timeout_s=60, cache=cache)], cache=cache, sandbox=sandbox, setup=setup)
    workspace = sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id="empty")
    try:
        setup(workspace)
        workspace.write_file("app.py", b"X = 2\n")
        [result] = gate.run(workspace, workspace.changes(), repo=tmp_path / "repo")
    finally:
        workspace.destroy()
    assert not result.passed
    [finding] = result.findings
    assert (finding.rule, finding.blocking, finding.baseline_state) == ("no-tests", True, "new")
