"""The dependency-bump and lint-fix recipes, run in the real bubblewrap sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codefactory.advisories import DEFAULT_ADVISORIES, AdvisoryDatabase
from codefactory.domain import ChangeKind, CheckResult, Task
from codefactory.engines import ChecksStillFail, EngineCrashed, NoSafeVersion, NothingToDo
from codefactory.engines.dependency_bump import DependencyBumpEngine
from codefactory.engines.lint_fix import LintFixEngine
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

BUMP = Task(kind=ChangeKind.BUMP_DEPENDENCY, title="Bump idna", body="CVE-2024-3651")
LINT = Task(kind=ChangeKind.FIX_LINT, title="Fix lint", body="")
PYPROJECT = """\
[project]
name = "demo"
version = "0.1.0"
dependencies = [
    "idna==3.6",  # CVE-2024-3651
    "packaging>=24",
]
"""

WorkspaceFactory = Callable[[dict[str, str]], BubblewrapWorkspace]


@pytest.fixture
def new_workspace(tmp_path: Path) -> Iterator[WorkspaceFactory]:
    """Provision a repository of `files`; every workspace is destroyed at the end."""
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")
    made: list[BubblewrapWorkspace] = []

    def provision(files: dict[str, str]) -> BubblewrapWorkspace:
        run_id = f"run{len(made)}"
        sha = make_repo(tmp_path / f"repo-{run_id}", files)
        workspace = sandbox.provision(repo=tmp_path / f"repo-{run_id}", commit=sha, run_id=run_id)
        made.append(workspace)
        return workspace

    yield provision
    for workspace in made:
        workspace.destroy()


@pytest.fixture(scope="module")
def advisories() -> AdvisoryDatabase:
    return AdvisoryDatabase.load(DEFAULT_ADVISORIES)


def _changed(workspace: BubblewrapWorkspace) -> dict[str, str]:
    return {f.path: (f.content or b"").decode() for f in workspace.changes().files}


def test_bump_rewrites_requirements_and_pyproject(
    new_workspace: WorkspaceFactory, advisories: AdvisoryDatabase
) -> None:
    ws = new_workspace(
        {
            "requirements.txt": "# pins\nidna==3.6  # dns\nrich==13.7.0\n",
            "pyproject.toml": PYPROJECT,
            "app.py": "import idna\n",
        }
    )
    proposal = DependencyBumpEngine(advisories).propose(BUMP, ws, [])
    assert _changed(ws) == {
        "requirements.txt": "# pins\nidna==3.7  # dns\nrich==13.7.0\n",
        "pyproject.toml": PYPROJECT.replace("idna==3.6", "idna==3.7"),
    }
    assert proposal.engine == "recipe:dependency-bump"
    assert "idna 3.6 → 3.7" in proposal.rationale
    assert "PYSEC-2024-60" in proposal.rationale and "CVE-2024-3651" in proposal.rationale
    assert {b["file"] for b in proposal.details["bumps"]} == {"pyproject.toml", "requirements.txt"}
    assert proposal.details["bumps"][0] | {"file": ""} == {
        "package": "idna",
        "from": "3.6",
        "to": "3.7",
        "advisories": ["PYSEC-2024-60"],
        "aliases": ["CVE-2024-3651"],
        "file": "",
    }


def test_second_round_without_anything_new_reports_the_checks(
    new_workspace: WorkspaceFactory, advisories: AdvisoryDatabase
) -> None:
    ws = new_workspace({"requirements.txt": "idna==3.6\n"})
    engine = DependencyBumpEngine(advisories)
    engine.propose(BUMP, ws, [])
    failed = CheckResult(check="tests", passed=False, summary="2 tests failed")
    with pytest.raises(ChecksStillFail, match="after the bump: tests: 2 tests failed"):
        engine.propose(BUMP, ws, [failed])


def test_bump_only_the_package_the_task_names(
    new_workspace: WorkspaceFactory, osv_pypi_vulns: Path
) -> None:
    ws = new_workspace({"requirements.txt": "idna==3.6\nwerkzeug==2.3.7\n"})
    task = Task(kind=ChangeKind.BUMP_DEPENDENCY, title="", body="", context={"package": "IDNA"})
    DependencyBumpEngine(AdvisoryDatabase.load(osv_pypi_vulns)).propose(task, ws, [])
    assert _changed(ws) == {"requirements.txt": "idna==3.7\nwerkzeug==2.3.7\n"}


def test_bump_on_a_clean_repo_has_nothing_to_do(
    new_workspace: WorkspaceFactory, advisories: AdvisoryDatabase
) -> None:
    ws = new_workspace({"requirements.txt": "idna==3.7\n", "app.py": "print('hi')\n"})
    with pytest.raises(NothingToDo, match="requirements.txt"):
        DependencyBumpEngine(advisories).propose(BUMP, ws, [])
    assert ws.changes().is_empty


def test_bump_without_a_safe_version_names_the_package(
    new_workspace: WorkspaceFactory, osv_pypi_vulns: Path
) -> None:
    ws = new_workspace({"requirements.txt": "py==1.11.0\n"})
    with pytest.raises(NoSafeVersion, match=r"py==1\.11\.0 .*PYSEC-2022-42969"):
        DependencyBumpEngine(AdvisoryDatabase.load(osv_pypi_vulns)).propose(BUMP, ws, [])
    assert ws.changes().is_empty


def test_lint_fix_removes_an_unused_import(new_workspace: WorkspaceFactory) -> None:
    ws = new_workspace({"app.py": "import os\nimport sys\n\nprint(sys.argv)\n"})
    proposal = LintFixEngine().propose(LINT, ws, [])
    assert _changed(ws) == {"app.py": "import sys\n\nprint(sys.argv)\n"}
    assert proposal.details == {"fixed": {"F401": 1}, "remaining": 0}
    assert "F401 ×1" in proposal.rationale


def test_lint_fix_on_a_clean_repo_has_nothing_to_do(new_workspace: WorkspaceFactory) -> None:
    ws = new_workspace({"app.py": "import sys\n\nprint(sys.argv)\n"})
    with pytest.raises(NothingToDo, match="no findings"):
        LintFixEngine().propose(LINT, ws, [])
    assert ws.changes().is_empty


def test_lint_fix_reports_a_broken_ruff_config(new_workspace: WorkspaceFactory) -> None:
    ws = new_workspace({"ruff.toml": "line-length = 'long'\n", "app.py": "import os\n"})
    with pytest.raises(EngineCrashed, match="ruff failed"):
        LintFixEngine().propose(LINT, ws, [])
