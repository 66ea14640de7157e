"""The SCA check before and after the dependency bump, in the real bubblewrap sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.advisories import DEFAULT_ADVISORIES, AdvisoryDatabase
from codefactory.domain import ChangeKind, Severity, Task
from codefactory.engines.dependency_bump import DependencyBumpEngine
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.verify.gate import Gate
from codefactory.verify.sca import ScaCheck
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")


def _workspace(tmp_path: Path, files: dict[str, str]) -> Iterator[BubblewrapWorkspace]:
    sha = make_repo(tmp_path / "repo", files)
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")
    workspace = sandbox.provision(repo=tmp_path / "repo", commit=sha, run_id="sca")
    yield workspace
    workspace.destroy()


@pytest.fixture
def vulnerable(tmp_path: Path) -> Iterator[BubblewrapWorkspace]:
    yield from _workspace(tmp_path, {"requirements.txt": "# pins\nrich==13.7.0\nidna==3.6\n"})


@pytest.fixture
def advisories() -> AdvisoryDatabase:
    return AdvisoryDatabase.load(DEFAULT_ADVISORIES)


def test_fails_before_the_bump_and_passes_after(
    vulnerable: BubblewrapWorkspace, advisories: AdvisoryDatabase
) -> None:
    check = ScaCheck(advisories)
    vulnerable.write_file("requirements.txt", b"# pins\nrich==13.7.0\nidna==3.6\n\n")
    before = check.run(vulnerable, vulnerable.changes())
    assert not before.passed
    [finding] = before.findings
    assert (finding.check, finding.rule, finding.path, finding.line) == (
        "sca",
        "PYSEC-2024-60",
        "requirements.txt",
        3,
    )
    assert finding.severity is Severity.HIGH
    assert "idna 3.6" in finding.message and "CVE-2024-3651" in finding.message
    assert "upgrade to 3.7" in finding.message
    assert "idna==3.6" in before.summary

    task = Task(kind=ChangeKind.BUMP_DEPENDENCY, title="Bump", body="")
    DependencyBumpEngine(advisories).propose(task, vulnerable, [])
    after = check.run(vulnerable, vulnerable.changes())
    assert after.passed and after.findings == ()
    assert "2 exact pins" in after.summary


def test_a_vulnerable_pin_the_change_did_not_touch_is_reported_without_blocking(
    tmp_path: Path, advisories: AdvisoryDatabase
) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"requirements.txt": "# pins\nrich==13.7.0\nidna==3.6\n"})
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")
    workspace = sandbox.provision(repo=repo, commit="HEAD", run_id="sca-gate")
    try:
        workspace.write_file("app.py", b"print('unrelated change')\n")
        gate = Gate([ScaCheck(advisories)], sandbox=sandbox)
        [result] = gate.run(workspace, workspace.changes(), repo=repo)
    finally:
        workspace.destroy()
    assert result.passed
    [finding] = result.findings
    assert finding.rule == "PYSEC-2024-60" and not finding.blocking
    assert finding.baseline_state == "unchanged"
    assert "pre-existing, not introduced by this change: 1 unchanged" in result.summary
    [sarif] = json.loads(result.evidence)["runs"][0]["results"]
    assert sarif["baselineState"] == "unchanged"
    assert sarif["partialFingerprints"]["codefactory/v1"] == finding.fingerprint


def test_evidence_is_sarif_2_1_0(
    vulnerable: BubblewrapWorkspace, advisories: AdvisoryDatabase
) -> None:
    result = ScaCheck(advisories).run(vulnerable, vulnerable.changes())
    assert result.evidence_name == "sca.sarif"
    log = json.loads(result.evidence)
    assert log["version"] == "2.1.0"
    [run] = log["runs"]
    assert run["tool"]["driver"]["name"] == "codefactory-sca"
    [sarif_result] = run["results"]
    assert sarif_result["ruleId"] == "PYSEC-2024-60"
    assert sarif_result["level"] == "error"
    location = sarif_result["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "requirements.txt"}, "region": {"startLine": 3}}


def test_unparseable_requirements_fail_the_check(
    tmp_path: Path, advisories: AdvisoryDatabase
) -> None:
    files = {"requirements-dev.txt": "pytest==8.0\nnot a requirement !!\n", "pyproject.toml": "["}
    for workspace in _workspace(tmp_path, files):
        result = ScaCheck(advisories).run(workspace, workspace.changes())
        assert not result.passed
        assert [(f.rule, f.path) for f in result.findings] == [
            ("sca-unreadable", "pyproject.toml"),
            ("sca-unreadable", "requirements-dev.txt"),
        ]
        assert result.findings[1].line == 2
        assert "2 dependency files could not be read" in result.summary


def test_no_pin_files_passes(tmp_path: Path, advisories: AdvisoryDatabase) -> None:
    for workspace in _workspace(tmp_path, {"app.py": "print('hi')\n"}):
        result = ScaCheck(advisories).run(workspace, workspace.changes())
        assert result.passed
        assert json.loads(result.evidence)["runs"][0]["results"] == []
