"""SAST and lint cannot be blinded, for real in the sandbox (the host's Python, lent bandit).

bandit's default excludes (`.git`, `.eggs`, `.tox`, ...) match as substrings anywhere in a
path, even for files named on its command line: before they were cleared, a changed file
under `pkg/my.eggs/` or named `.github_sync.py` was silently left unscanned.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.port import Phase
from codefactory.verify.lint import RuffCheck
from codefactory.verify.sast import SastCheck
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

SHELL = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
CHANGED = ("pkg/my.eggs/run.py", "scripts/.github_sync.py", "tox_env/.tox/run.py", "svc/app.py")


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[BubblewrapWorkspace]:
    make_repo(
        tmp_path / "repo",
        {
            "svc/app.py": "X = 1\n",
            "pyproject.toml": '[tool.bandit]\nexclude_dirs = ["svc", "pkg", "scripts"]\n',
            ".bandit": "[bandit]\nexclude = svc,pkg,scripts\n",
        },
    )
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")
    made = sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id="sast")
    yield made
    made.destroy()
    sandbox.close()


def test_no_path_or_configured_exclude_hides_a_changed_file(
    workspace: BubblewrapWorkspace,
) -> None:
    for path in CHANGED:
        workspace.write_file(path, SHELL.encode())

    result = SastCheck().run(workspace, workspace.changes())

    by_bandit = {f.path for f in result.findings if f.rule == "B602" and "bandit" in f.message}
    assert by_bandit == set(CHANGED), result.findings
    assert "bandit on Python 3.11" in result.summary
    assert not result.passed


def test_an_unreadable_rule_selection_widens_the_scan(workspace: BubblewrapWorkspace) -> None:
    workspace.write_file("pyproject.toml", b'[tool.bandit]\nskips = ["subprocess"]\n')
    workspace.write_file("svc/app.py", SHELL.encode())

    result = SastCheck().run(workspace, workspace.changes())

    assert "B602" in {f.rule for f in result.findings}
    assert "the repository's bandit selection was ignored" in result.summary
    assert "'subprocess' is not a bandit test id" in result.summary


def test_a_ruff_configuration_ruff_refuses_is_named_not_passed(
    workspace: BubblewrapWorkspace,
) -> None:
    workspace.write_file("ruff.toml", b'required-version = ">=99"\n')
    workspace.write_file("svc/app.py", b"import os\n")

    result = RuffCheck().run(workspace, workspace.changes())

    assert not result.passed
    [finding] = result.findings
    assert finding.rule == "lint-could-not-run"
    assert "Required version `>=99` does not match" in result.summary


SWITCHES = {
    "fix": "[tool.ruff]\nfix = true\n",
    "fix-only": "[tool.ruff]\nfix-only = true\n",
    "unsafe-fixes": "[tool.ruff]\nfix = true\nunsafe-fixes = true\n",
    "show-fixes": "[tool.ruff]\nshow-fixes = true\n",
    "exclude": '[tool.ruff]\nexclude = ["svc"]\n',
    "extend-exclude": '[tool.ruff]\nextend-exclude = ["svc/app.py"]\n',
    "lint.exclude": '[tool.ruff.lint]\nexclude = ["svc/*"]\n',
    "force-exclude": '[tool.ruff]\nforce-exclude = true\nextend-exclude = ["svc/app.py"]\n',
    "respect-gitignore": "[tool.ruff]\nrespect-gitignore = true\n",
}


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_no_ruff_behaviour_switch_blinds_lint(workspace: BubblewrapWorkspace, switch: str) -> None:
    workspace.write_file("pyproject.toml", SWITCHES[switch].encode())
    workspace.write_file(".gitignore", b"svc/app.py\n")
    changed = b"import os\n\n\ndef f(x):\n    return x\n"
    workspace.write_file("svc/app.py", changed)

    result = RuffCheck().run(workspace, workspace.changes())

    assert ("F401", "svc/app.py", 1) in {(f.rule, f.path, f.line) for f in result.findings}, (
        result.summary
    )
    assert workspace.read_file("svc/app.py", phase=Phase.CHECK) == changed  # never rewritten
