"""SAST, secrets and SCA on lock files, run for real inside the bubblewrap sandbox.

The scanners are the factory's own bandit, detect-secrets and ruff, lent read-only to the
sandbox; nothing here needs the network or the repository's dependencies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.advisories import DEFAULT_ADVISORIES, AdvisoryDatabase
from codefactory.domain import Severity
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.verify.diff import read_files, with_base
from codefactory.verify.sast import SastCheck
from codefactory.verify.sca import ScaCheck
from codefactory.verify.secrets import SecretsCheck
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

BASE = {
    "svc/__init__.py": "",
    "svc/app.py": (
        "import subprocess\n\n\n"
        "def legacy(cmd):\n"
        "    return subprocess.call(cmd, shell=True)\n\n\n"
        'TOKEN = "ghp_' + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8" + '"\n'
    ),
}


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[BubblewrapWorkspace]:
    make_repo(tmp_path / "repo", BASE)
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")
    made = sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id="checks")
    yield made
    made.destroy()


def test_sast_reports_bandit_and_ruff_findings_once_each(workspace: BubblewrapWorkspace) -> None:
    added = BASE["svc/app.py"] + "\n\ndef run(expr):\n    return eval(expr)  # nosec\n"
    workspace.write_file("svc/app.py", added.encode())

    result = SastCheck().run(workspace, workspace.changes())

    rules = sorted((f.rule, f.line) for f in result.findings)
    assert ("B602", 5) in rules and ("B307", 12) in rules  # `# nosec` is not honoured
    assert len(rules) == len(set(rules))  # bandit's B602 and ruff's S602 are one finding
    b602 = next(f for f in result.findings if f.rule == "B602")
    assert b602.severity is Severity.HIGH and "bandit" in b602.message
    assert all(f.fingerprint for f in result.findings)
    sarif = json.loads(result.evidence)
    assert sarif["version"] == "2.1.0" and result.evidence_name == "sast.sarif"


def test_a_file_bandit_cannot_parse_is_a_named_blocking_finding(
    workspace: BubblewrapWorkspace,
) -> None:
    workspace.write_file("svc/broken.py", b"def broken(:\n")

    result = SastCheck().run(workspace, workspace.changes())

    assert not result.passed
    [finding] = result.findings
    assert (finding.rule, finding.path) == ("sast-file-unscanned", "svc/broken.py")


def test_a_scanner_that_cannot_start_fails_the_check(workspace: BubblewrapWorkspace) -> None:
    workspace.write_file("svc/app.py", b"X = 1\n")
    for check in (SastCheck(python="/usr/bin/no-such-python"), SecretsCheck(python="/nope")):
        result = check.run(workspace, workspace.changes())
        assert not result.passed
        [finding] = result.findings
        assert finding.rule.endswith("-could-not-run"), finding
        assert finding.severity is Severity.HIGH


def test_secrets_are_found_on_changed_lines_only(workspace: BubblewrapWorkspace) -> None:
    new = BASE["svc/app.py"] + 'AWS_KEY = "AKIAIOSFODNN7EXAMPLE"  # pragma: allowlist secret\n'
    workspace.write_file("svc/app.py", new.encode())
    change = with_base(workspace.changes(), {"svc/app.py": BASE["svc/app.py"].encode()})

    result = SecretsCheck().run(workspace, change)

    [finding] = result.findings  # the GitHub token on an unchanged line is not reported
    assert (finding.rule, finding.line) == ("aws-access-key", 9)
    assert "AKIA" not in finding.message and "AKIA" not in result.evidence
    assert not result.passed


def test_without_the_base_every_line_counts_as_changed(workspace: BubblewrapWorkspace) -> None:
    workspace.write_file("svc/app.py", (BASE["svc/app.py"] + "# touched\n").encode())

    result = SecretsCheck().run(workspace, workspace.changes())

    assert "github-token" in {f.rule for f in result.findings}
    assert {f.line for f in result.findings} == {8}


def test_base_files_are_read_back_exactly(workspace: BubblewrapWorkspace) -> None:
    workspace.write_file("blob.bin", bytes(range(256)) * 4)
    found = read_files(workspace, ["svc/app.py", "blob.bin", "missing.py", "svc"])
    assert found["svc/app.py"] == BASE["svc/app.py"].encode()
    assert found["blob.bin"] == bytes(range(256)) * 4
    assert found["missing.py"] is None and found["svc"] is None


def test_sca_judges_lock_files_and_names_an_unparseable_one(tmp_path: Path) -> None:
    files = {
        "uv.lock": '[[package]]\nname = "idna"\nversion = "3.6"\n',
        "poetry.lock": "[[package]\nbroken",
    }
    make_repo(tmp_path / "repo", files)
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")
    workspace = sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id="locks")
    try:
        result = ScaCheck(AdvisoryDatabase.load(DEFAULT_ADVISORIES)).run(
            workspace, workspace.changes()
        )
    finally:
        workspace.destroy()
    assert not result.passed
    assert sorted((f.rule, f.path) for f in result.findings) == [
        ("PYSEC-2024-60", "uv.lock"),
        ("sca-unreadable", "poetry.lock"),
    ]
    assert "1 dependency files could not be read" in result.summary
