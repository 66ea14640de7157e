"""The integrity check for real: engines that pass by changing what judges them are caught.

Each test plays an engine on a real bubblewrap workspace of a small git repository (its
dependencies installed by the setup phase from a shared package cache), then runs the gate
with the integrity check and the tests check. The base commit's tests run inside the change's
workspace, in the check layer the tests check reads too: each test that swaps files asserts
the tests check still saw the change's versions.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from codefactory.domain import ChangeKind, CheckResult, TriggerEvent
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.errors import SetupFailed
from codefactory.sandbox.layout import system_tool
from codefactory.sandbox.port import Phase, Workspace
from codefactory.sandbox.setup import install_dependencies
from codefactory.verify.gate import Gate
from codefactory.verify.integrity import IntegrityCheck
from codefactory.verify.settings import VerifySettings
from codefactory.verify.tests import PytestCheck
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

CALC = (
    "import time\n\n\n"
    "def add(a, b):\n    return a + b\n\n\n"
    "def scale(x):\n    return x * 2\n\n\n"
    "def wait():\n    return 0\n"
)
TEST_ADD = "from pkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
TEST_SCALE = "from pkg.calc import scale\n\n\ndef test_scale():\n    assert scale(2) == 4\n"
TEST_WAIT = "from pkg.calc import wait\n\n\ndef test_wait():\n    assert wait() == 0\n"
PYPROJECT = '[tool.ruff]\nline-length = 100\n\n[tool.ruff.lint]\nselect = ["E", "F"]\n'
REPO = {
    "requirements-dev.txt": "pytest\n",
    "pyproject.toml": PYPROJECT,
    "pkg/__init__.py": "",
    "pkg/calc.py": CALC,
    "tests/test_add.py": TEST_ADD,
    "tests/test_scale.py": TEST_SCALE,
    "tests/test_wait.py": TEST_WAIT,
}


def setup(workspace: Workspace) -> object:
    try:
        return install_dependencies(workspace)
    except SetupFailed as exc:
        pytest.skip(f"could not install the test repository's requirements: {exc}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[BubblewrapSandbox, Path]:
    root = tmp_path_factory.mktemp("integrity")
    make_repo(root / "repo", REPO)
    return BubblewrapSandbox(root / "work", root / "uv-cache"), root / "repo"


@pytest.fixture
def workspace(world: tuple[BubblewrapSandbox, Path]) -> Iterator[BubblewrapWorkspace]:
    sandbox, repo = world
    made: BubblewrapWorkspace = sandbox.provision(repo=repo, commit="HEAD", run_id="engine")
    setup(made)
    yield made
    made.destroy()


def gate(world: tuple[BubblewrapSandbox, Path], *, timeout_s: float = 120) -> Gate:
    """Integrity and the whole suite; the tests run even when integrity blocks, so each test
    sees what the tests check made of the workspace after the base-test run."""
    sandbox, _ = world
    checks = [IntegrityCheck(timeout_s=timeout_s), PytestCheck(timeout_s=120, select=False)]
    return Gate(checks, settings=VerifySettings(stop_early=False), sandbox=sandbox)


def ticket(*labels: str, body: str = "Fix it.") -> TriggerEvent:
    return TriggerEvent(
        source="jira", kind=ChangeKind.GENERAL_CHANGE, external_id="SVC-9", actor="priya",
        repository="repo", title="add() is wrong", body=body, labels=labels,
        received_at=datetime.now(UTC), payload_digest="sha256:00",
    )  # fmt: skip


def judge(
    world: tuple[BubblewrapSandbox, Path],
    workspace: Workspace,
    *,
    labels: tuple[str, ...] = (),
    body: str = "Fix it.",
) -> tuple[CheckResult, CheckResult]:
    integrity, tests = gate(world).run(
        workspace, workspace.changes(), repo=world[1], ticket=ticket(*labels, body=body)
    )
    return integrity, tests


def rules(result: CheckResult, *, blocking: bool | None = None) -> set[str]:
    return {f.rule for f in result.findings if blocking is None or f.blocking is blocking}


def test_a_weakened_assertion_is_caught_and_the_base_test_fails_against_the_change(
    world: tuple[BubblewrapSandbox, Path], workspace: BubblewrapWorkspace
) -> None:
    weakened = TEST_ADD.replace("assert add(1, 2) == 3", "assert add(1, 2)")
    workspace.write_file("pkg/calc.py", CALC.replace("return a + b", "return a + b + 1").encode())
    workspace.write_file("tests/test_add.py", weakened.encode())

    integrity, tests = judge(world, workspace)

    assert not integrity.passed
    assert rules(integrity, blocking=True) == {"assertion-removed", "base-test-failed"}
    removed = next(f for f in integrity.findings if f.rule == "assertion-removed")
    assert (removed.path, removed.line) == ("tests/test_add.py", 4)
    assert "assert add(1, 2) == 3" in removed.message
    failed = next(f for f in integrity.findings if f.rule == "base-test-failed")
    assert "tests/test_add.py::test_add" in failed.message and failed.path == "tests/test_add.py"
    assert "the base commit's tests (tests/test_add.py): 1 of 1 failed" in integrity.summary
    # the change's own (weakened) suite passes: the base versions were never left in place
    assert tests.passed, tests.summary
    shown = workspace.read_file("tests/test_add.py", phase=Phase.CHECK)
    assert shown == weakened.encode()
    assert '"ruleId": "assertion-removed"' in integrity.evidence


def test_an_added_noqa_is_caught_without_running_the_base_tests(
    world: tuple[BubblewrapSandbox, Path], workspace: BubblewrapWorkspace
) -> None:
    workspace.write_file("pkg/calc.py", ("import os  # noqa: F401\n" + CALC).encode())

    integrity, tests = judge(world, workspace)

    [finding] = integrity.findings
    assert (finding.rule, finding.path, finding.line, finding.blocking) == (
        "suppression-added",
        "pkg/calc.py",
        1,
        True,
    )
    assert "`noqa`" in finding.message
    assert "base commit's tests" not in integrity.summary
    assert tests.passed


def test_a_looser_ruff_table_is_caught(
    world: tuple[BubblewrapSandbox, Path], workspace: BubblewrapWorkspace
) -> None:
    looser = PYPROJECT.replace('select = ["E", "F"]', 'select = ["E"]\nignore = ["E501"]')
    workspace.write_file("pyproject.toml", looser.encode())

    integrity, _ = judge(world, workspace)

    [finding] = integrity.findings
    assert (finding.rule, finding.path, finding.line) == (
        "tool-config-changed",
        "pyproject.toml",
        5,
    )
    assert finding.blocking and not integrity.passed
    assert "base commit's tests" not in integrity.summary  # ruff's table: pytest unaffected


def test_a_deleted_failing_test_is_caught_and_its_base_version_still_fails(
    world: tuple[BubblewrapSandbox, Path], workspace: BubblewrapWorkspace
) -> None:
    workspace.write_file("pkg/calc.py", CALC.replace("return x * 2", "return x * 3").encode())
    removed = workspace.exec(
        [system_tool("rm"), "tests/test_scale.py"], phase=Phase.ENGINE, timeout_s=30
    )
    assert removed.ok, removed.stderr

    integrity, tests = judge(world, workspace)

    assert rules(integrity, blocking=True) == {"test-deleted", "base-test-failed"}
    deleted = next(f for f in integrity.findings if f.rule == "test-deleted")
    assert deleted.path == "tests/test_scale.py" and "deletes the test file" in deleted.message
    failed = next(f for f in integrity.findings if f.rule == "base-test-failed")
    assert "tests/test_scale.py::test_scale" in failed.message
    assert tests.passed, tests.summary  # the deleted file stayed deleted for the tests check
    assert workspace.read_file("tests/test_scale.py", phase=Phase.CHECK) is None


def test_a_change_that_only_adds_tests_passes_with_a_note(
    world: tuple[BubblewrapSandbox, Path], workspace: BubblewrapWorkspace
) -> None:
    more = TEST_ADD + "\n\ndef test_add_negative():\n    assert add(-1, -2) == -3\n"
    workspace.write_file("tests/test_add.py", more.encode())
    workspace.write_file("tests/test_new.py", TEST_SCALE.replace("scale(2)", "scale(3)").replace(
        "== 4", "== 6").encode())  # fmt: skip

    integrity, tests = judge(world, workspace)

    assert integrity.passed and not integrity.findings, integrity.summary
    assert "2 test(s) added" in integrity.summary
    assert "tests/test_add.py::test_add_negative" in integrity.summary
    assert "tests/test_new.py::test_scale" in integrity.summary
    assert tests.passed


def test_labels_asking_for_test_changes_report_without_blocking_and_the_body_does_not(
    world: tuple[BubblewrapSandbox, Path], workspace: BubblewrapWorkspace
) -> None:
    workspace.write_file("pkg/calc.py", CALC.replace("return a + b", "return a + b + 1").encode())
    workspace.write_file("tests/test_add.py", TEST_ADD.replace("== 3", "== 4").encode())

    asked, _ = judge(world, workspace, labels=("Tests",))
    told, _ = judge(world, workspace, body="Labels: tests, config-change. Edit the tests freely.")

    assert asked.passed, asked.summary
    assert rules(asked, blocking=False) == {"assertion-removed", "base-test-failed"}
    assert all("reported, not blocking" in f.message for f in asked.findings)
    assert not told.passed
    assert rules(told, blocking=True) == {"assertion-removed", "base-test-failed"}


def test_a_base_test_that_hangs_blocks_and_the_change_is_put_back(
    world: tuple[BubblewrapSandbox, Path], workspace: BubblewrapWorkspace
) -> None:
    sandbox, repo = world
    workspace.write_file("pkg/calc.py", CALC.replace("return 0", "time.sleep(60)").encode())
    workspace.write_file("tests/test_wait.py", b"def test_wait():\n    pass\n")
    check = IntegrityCheck(timeout_s=5)

    [integrity] = Gate([check], sandbox=sandbox).run(workspace, workspace.changes(), repo=repo)

    assert not integrity.passed
    assert rules(integrity) >= {"assertion-removed", "base-tests-could-not-run"}
    broken = next(f for f in integrity.findings if f.rule == "base-tests-could-not-run")
    assert "did not finish within 5 s" in broken.message and broken.blocking
    changed = b"def test_wait():\n    pass\n"
    assert workspace.read_file("tests/test_wait.py", phase=Phase.CHECK) == changed


def test_without_the_base_versions_the_check_cannot_judge(workspace: BubblewrapWorkspace) -> None:
    workspace.write_file("tests/test_add.py", TEST_ADD.replace("== 3", "").encode())

    [integrity] = Gate([IntegrityCheck()]).run(workspace, workspace.changes())

    [finding] = integrity.findings
    assert finding.rule == "integrity-could-not-run" and finding.blocking
    assert "tests/test_add.py" in finding.message and not integrity.passed
