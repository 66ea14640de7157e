"""The gate against the base commit, for real: only what a change introduced blocks.

Base-commit runs happen in their own sandbox workspaces provisioned from the repository;
their findings are cached per commit, file and tool configuration.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from codefactory.domain import Severity
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.verify.cache import MemoryVerifyCache
from codefactory.verify.gate import Gate, passed
from codefactory.verify.lint import RuffCheck
from codefactory.verify.sast import SastCheck
from codefactory.verify.secrets import SecretsCheck
from codefactory.verify.settings import VerifySettings, Waiver
from codefactory.verify.tests import PytestCheck
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

APP = (
    "import os\n"
    "import subprocess\n\n\n"
    "def legacy(cmd):\n"
    "    return subprocess.call(cmd, shell=True)\n"
)
# fixes the unused import, keeps the old shell call, adds an eval and a random token
CHANGED = (
    "import random\n"
    "import subprocess\n\n\n"
    "def legacy(cmd):\n"
    "    return subprocess.call(cmd, shell=True)\n\n\n"
    "def run(expr):\n"
    "    return eval(expr)\n\n\n"
    "def token():\n"
    "    return random.random()\n"
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    make_repo(tmp_path / "repo", {"svc/__init__.py": "", "svc/app.py": APP})
    return tmp_path / "repo"


@pytest.fixture
def sandbox(tmp_path: Path) -> BubblewrapSandbox:
    return BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")


@pytest.fixture
def changed(sandbox: BubblewrapSandbox, repo: Path) -> Iterator[BubblewrapWorkspace]:
    workspace = sandbox.provision(repo=repo, commit="HEAD", run_id="change")
    workspace.write_file("svc/app.py", CHANGED.encode())
    yield workspace
    workspace.destroy()


def test_pre_existing_findings_are_reported_and_only_new_ones_block(
    sandbox: BubblewrapSandbox, repo: Path, changed: BubblewrapWorkspace
) -> None:
    gate = Gate([RuffCheck(), SastCheck()], sandbox=sandbox)

    lint, sast = gate.run(changed, changed.changes(), repo=repo)

    assert lint.passed
    [fixed] = lint.findings
    assert (fixed.rule, fixed.baseline_state, fixed.blocking) == ("F401", "absent", False)
    states = {(f.rule, f.baseline_state, f.blocking) for f in sast.findings}
    assert ("B602", "unchanged", False) in states  # the old shell call
    assert ("B307", "new", True) in states  # the eval the change added
    assert ("B311", "new", False) in states  # new, but low: under sast's threshold
    assert not sast.passed and not passed([lint, sast])
    assert "pre-existing, not introduced by this change" in sast.summary
    assert not list((sandbox.work_root).glob("change-base-*"))  # base workspaces are gone


def test_the_base_commits_findings_come_from_the_cache_the_second_time(
    sandbox: BubblewrapSandbox, repo: Path, changed: BubblewrapWorkspace
) -> None:
    cache = MemoryVerifyCache()
    Gate([SastCheck()], cache=cache, sandbox=sandbox).run(changed, changed.changes(), repo=repo)

    # no sandbox, no repository: the base can only come from the cache now
    [sast] = Gate([SastCheck()], cache=cache).run(changed, changed.changes())

    assert {(f.rule, f.baseline_state) for f in sast.findings} >= {
        ("B602", "unchanged"),
        ("B307", "new"),
    }


def test_thresholds_and_waivers_come_from_settings(
    sandbox: BubblewrapSandbox, repo: Path, changed: BubblewrapWorkspace
) -> None:
    waiver = Waiver(
        check="sast", rule="B307", approver="ciso", reason="sandboxed", expires=date(2099, 1, 1)
    )
    settings = VerifySettings(thresholds={"sast": Severity.LOW}, waivers=(waiver,))
    gate = Gate([SastCheck()], settings=settings, sandbox=sandbox)

    [sast] = gate.run(changed, changed.changes(), repo=repo)

    blocking = {f.rule for f in sast.findings if f.blocking}
    assert blocking == {"B311"}  # low now blocks; the eval is waived
    [use] = gate.waivers_applied([sast])
    assert (use.actor, use.finding.rule, use.finding.waived_by) == ("user:ciso", "B307", "ciso")


def test_a_blocking_cheap_check_stops_the_tests_and_says_so(
    sandbox: BubblewrapSandbox, repo: Path, changed: BubblewrapWorkspace
) -> None:
    checks = [SecretsCheck(), SastCheck(), PytestCheck(timeout_s=30)]

    secrets, sast, tests = Gate(checks, sandbox=sandbox).run(changed, changed.changes(), repo=repo)

    assert secrets.passed and not sast.passed
    assert not tests.passed and tests.summary == "not run: sast already block(s) the change"
    assert "<skipped" in tests.evidence

    settings = VerifySettings(stop_early=False)
    *_, tests = Gate(checks, settings=settings, sandbox=sandbox).run(
        changed, changed.changes(), repo=repo
    )
    assert [f.rule for f in tests.findings] == ["tests-could-not-run"]  # no pytest in /env
    assert tests.findings[0].blocking and tests.findings[0].baseline_state == "new"
