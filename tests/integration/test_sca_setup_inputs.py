"""SCA judges what the setup phase installs from setup inputs (setup.cfg, tox.ini, the
repository config), through the real sandbox and the gate.

The red team's F6: `idna==3.6` in setup.cfg's `install_requires` passed SCA with "0 exact
pins" while the same pin in requirements.txt blocked on PYSEC-2024-60. The advisory data is
the copy shipped with the package (it holds PYSEC-2024-60), with no age limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.advisories import DEFAULT_ADVISORIES, AdvisoryDatabase
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.verify.cache import MemoryVerifyCache
from codefactory.verify.gate import Gate
from codefactory.verify.sca import ScaCheck
from tests.conftest import git

pytestmark = pytest.mark.usefixtures("bwrap_available")

SETUP_CFG = "[metadata]\nname = app\n\n[options]\ninstall_requires =\n    idna==3.6\n"
CONFIG = '[setup]\ncommands = ["make assets"]\n'


@pytest.fixture
def workspaces(tmp_path: Path) -> Iterator[tuple[BubblewrapSandbox, list[BubblewrapWorkspace]]]:
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")
    made: list[BubblewrapWorkspace] = []
    yield sandbox, made
    for workspace in made:
        workspace.destroy()


def test_a_vulnerable_pin_in_setup_cfg_blocks_and_a_setup_command_is_counted(
    tmp_path: Path, workspaces: tuple[BubblewrapSandbox, list[BubblewrapWorkspace]]
) -> None:
    sandbox, made = workspaces
    repo = tmp_path / "repo"
    (repo / ".codefactory").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "setup.cfg").write_text(SETUP_CFG)
    (repo / ".codefactory" / "config.toml").write_text(CONFIG)
    (repo / "app.py").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")

    def provision() -> BubblewrapWorkspace:
        workspace = sandbox.provision(repo=repo, commit="HEAD", run_id=f"w{len(made)}")
        made.append(workspace)
        return workspace

    check = ScaCheck(AdvisoryDatabase.load(DEFAULT_ADVISORIES), max_age_days=None)
    workspace = provision()
    result = check.run(workspace, workspace.changes())
    assert not result.passed
    assert [(f.rule, f.path, f.line) for f in result.findings] == [
        ("PYSEC-2024-60", "setup.cfg", 6)
    ]
    assert "judged 1 exact pins (PyPI 1) in 2 dependency files" in result.summary
    assert "idna==3.6 in setup.cfg (PYSEC-2024-60)" in result.summary
    assert "1 requirements not pinned, not judged (1 setup-command)" in result.summary

    gate = Gate([check], sandbox=sandbox, cache=MemoryVerifyCache())
    # the committed pin and setup command do not block a change that does not touch them...
    workspace.write_file("app.py", b"print('unrelated')\n")
    [sca] = gate.run(workspace, workspace.changes(), repo=repo)
    assert sca.passed, sca.summary
    assert [(f.rule, f.baseline_state, f.blocking) for f in sca.findings] == [
        ("PYSEC-2024-60", "unchanged", False)
    ]
    # ...while the same pin added to another setup input (tox.ini deps) is new and blocks
    added = provision()
    added.write_file("tox.ini", b"[testenv]\ndeps =\n    pytest\n    idna==3.6\n")
    [sca] = gate.run(added, added.changes(), repo=repo)
    assert not sca.passed
    new = [(f.rule, f.path, f.line) for f in sca.findings if f.blocking]
    assert new == [("PYSEC-2024-60", "tox.ini", 4)]


def test_what_setup_installed_is_judged_however_it_got_there(
    tmp_path: Path, workspaces: tuple[BubblewrapSandbox, list[BubblewrapWorkspace]]
) -> None:
    """A shell line of the repository config installs idna 3.6: no file pins it, the
    installed environment shows it (red team round 2: uv.toml overrides and setuptools'
    dynamic dependencies installed pins SCA never read)."""
    from codefactory.sandbox.setup import install_dependencies

    sandbox, made = workspaces
    line = "uv pip install --quiet --python /env/bin/python idna==3.6 && echo installed"
    repo = tmp_path / "installed"
    (repo / ".codefactory").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / ".codefactory" / "config.toml").write_text(f'[setup]\ncommands = ["{line}"]\n')
    (repo / "pyproject.toml").write_text('[project]\nname = "app"\nversion = "1"\n')
    (repo / "app.py").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    workspace = sandbox.provision(repo=repo, commit="HEAD", run_id="installed")
    made.append(workspace)
    install_dependencies(workspace, timeout_s=300)

    check = ScaCheck(AdvisoryDatabase.load(DEFAULT_ADVISORIES), max_age_days=None)
    result = check.run(workspace, workspace.changes())
    assert not result.passed
    assert ("PYSEC-2024-60", "/env") in [(f.rule, f.path) for f in result.findings]
    assert "installed in /env than the files pin" in result.summary
