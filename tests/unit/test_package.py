"""The change package built from hand-made domain objects: files, risk, rollback, CAB record."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from codefactory.domain import (
    Change,
    ChangeKind,
    CheckResult,
    FileChange,
    Finding,
    Proposal,
    Run,
    RunState,
    Severity,
    TriggerEvent,
)
from codefactory.package import (
    DuplicateEvidence,
    PackageContents,
    PackageExists,
    UnsafeName,
    assess_risk,
)
from codefactory.package.builder import FolderPackageBuilder
from codefactory.package.cab import cab_record
from codefactory.package.risk import lines_changed
from codefactory.package.rollback import rollback_plan
from codefactory.verify.sarif import to_sarif

NOW = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
COMMIT = "a" * 40
BASE = "b" * 40
PATCH = (
    "diff --git a/requirements.txt b/requirements.txt\n"
    "index 1111111..2222222 100644\n"
    "--- a/requirements.txt\n"
    "+++ b/requirements.txt\n"
    "@@ -1,2 +1,2 @@\n"
    "-idna==3.6\n"
    "+idna==3.7\n"
    " requests==2.31.0\n"
)
JUNIT = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<testsuites><testsuite name="pytest" tests="2" failures="0" errors="0">'
    '<testcase classname="tests.test_app" name="test_a" time="0.01"/>'
    '<testcase classname="tests.test_app" name="test_b" time="0.02"/>'
    "</testsuite></testsuites>\n"
)
ADVISORY = "GHSA-jjg7-2v4v-x38h"
BUMPS = [
    {
        "package": "idna",
        "from": "3.6",
        "to": "3.7",
        "file": "requirements.txt",
        "advisories": [ADVISORY, {"id": "PYSEC-2024-60"}],
    }
]


def _results(*, failing: bool = False) -> tuple[CheckResult, ...]:
    finding = Finding(
        check="sca", rule=ADVISORY, message="idna 3.6 is vulnerable", severity=Severity.HIGH,
        blocking=False,
    )  # fmt: skip
    return (
        CheckResult(check="lint", passed=True, evidence_name="lint.sarif",
                    evidence=to_sarif("ruff", "0.6.0", []), summary="clean"),
        CheckResult(check="tests", passed=not failing, evidence_name="junit.xml",
                    evidence=JUNIT, summary="2 passed"),
        CheckResult(check="sca", passed=True, findings=(finding,), evidence_name="sca.sarif",
                    evidence=to_sarif("osv", "1", [finding])),
        CheckResult(check="diff-policy", passed=True),
    )  # fmt: skip


def _contents(
    *,
    run_id: str = "r-0001",
    kind: ChangeKind = ChangeKind.BUMP_DEPENDENCY,
    files: tuple[FileChange, ...] = (
        FileChange(path="requirements.txt", content=b"idna==3.7\nrequests==2.31.0\n"),
    ),
    results: tuple[CheckResult, ...] | None = None,
    engine: str = "recipe:dependency-bump",
    patch: str = PATCH,
) -> PackageContents:
    run = Run(
        id=run_id, trigger_id="t-1", kind=kind, repository="payments-api", sponsor="alice",
        agent_id="agent:dependency-bump", state=RunState.VERIFIED, reason="",
        base_commit=BASE, head_commit=COMMIT, branch=f"factory/{run_id}", package_dir="",
        created_at=NOW,
    )  # fmt: skip
    trigger = TriggerEvent(
        source="jira", kind=kind, external_id="PAY-123", actor="bob",
        repository="payments-api", title="Fix CVE in idna | urgent", body="Please bump idna.",
        links=("https://jira.example/PAY-123",), received_at=NOW, payload_digest="sha256:00",
    )  # fmt: skip
    proposal = Proposal(
        engine=engine, engine_version="1.0", rationale="idna 3.6 has ```ticks``` issues",
        details={"bumps": BUMPS} if kind is ChangeKind.BUMP_DEPENDENCY else {},
    )  # fmt: skip
    return PackageContents(
        run=run, trigger=trigger, proposal=proposal,
        results=_results() if results is None else results, rounds=1, patch=patch,
        commit=COMMIT, branch=f"factory/{run_id}", forge_repository="/srv/forge/payments-api.git",
        change=Change(files=files),
    )  # fmt: skip


EXPECTED_FILES = (
    "cab.json",
    "change.patch",
    "evidence/coverage.json",
    "evidence/junit.xml",
    "evidence/lint.sarif",
    "evidence/sca.sarif",
    "manifest.json",
    "risk.json",
    "rollback.md",
    "summary.md",
)


def test_package_holds_every_file_and_each_parses(tmp_path: Path) -> None:
    package = FolderPackageBuilder(tmp_path).build(_contents())
    folder = tmp_path / "r-0001"
    assert package.directory == folder
    assert package.files == EXPECTED_FILES
    assert (package.run_id, package.branch, package.commit) == ("r-0001", "factory/r-0001", COMMIT)
    assert package.risk_level == "moderate"
    assert (folder / "change.patch").read_text() == PATCH
    sarif = json.loads((folder / "evidence" / "sca.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    assert sarif["runs"][0]["results"][0]["ruleId"] == ADVISORY
    assert json.loads((folder / "evidence" / "lint.sarif").read_text())["runs"][0]["results"] == []
    suite = ET.parse(folder / "evidence" / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2"
    assert json.loads((folder / "risk.json").read_text())["level"] == "moderate"
    assert json.loads((folder / "cab.json").read_text())["u_codefactory"]["run_id"] == "r-0001"
    assert [p.name for p in tmp_path.iterdir()] == ["r-0001"]  # no scratch folder left


def test_summary_tells_the_reviewer_what_and_how(tmp_path: Path) -> None:
    FolderPackageBuilder(tmp_path).build(_contents())
    text = (tmp_path / "r-0001" / "summary.md").read_text()
    for expected in (
        "PAY-123", "alice", "agent:dependency-bump", "recipe:dependency-bump",
        "factory/r-0001", COMMIT, "/srv/forge/payments-api.git", "requirements.txt",
        "codefactory review approve r-0001 --as <you>", "| tests | pass | 0 | 0 |",
        "| sca | pass | 1 | 0 | `evidence/sca.sarif` |",
    ):  # fmt: skip
        assert expected in text
    assert "Fix CVE in idna \\| urgent" in text  # untrusted title cannot break the table
    assert "````text\nidna 3.6 has ```ticks``` issues\n````" in text


def test_building_twice_refuses_and_keeps_the_first(tmp_path: Path) -> None:
    builder = FolderPackageBuilder(tmp_path)
    builder.build(_contents())
    before = {p: p.read_bytes() for p in (tmp_path / "r-0001").rglob("*") if p.is_file()}
    with pytest.raises(PackageExists) as raised:
        builder.build(_contents(patch=PATCH + "+more\n"))
    assert raised.value.run_id == "r-0001"
    after = {p: p.read_bytes() for p in (tmp_path / "r-0001").rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["r-0001"]


def test_nothing_is_left_half_written_on_failure(tmp_path: Path) -> None:
    clash = _results() + (CheckResult(check="sast", passed=True, evidence_name="lint.sarif"),)
    with pytest.raises(DuplicateEvidence):
        FolderPackageBuilder(tmp_path).build(_contents(results=clash))
    with pytest.raises(UnsafeName):
        FolderPackageBuilder(tmp_path).build(_contents(run_id="../escape"))
    bad = (CheckResult(check="x", passed=True, evidence_name="../x.sarif", evidence="{}"),)
    with pytest.raises(UnsafeName):
        FolderPackageBuilder(tmp_path).build(_contents(results=bad))
    assert list(tmp_path.iterdir()) == []


def test_non_utf8_patch_bytes_survive(tmp_path: Path) -> None:
    patch = PATCH + b"+caf\xe9\n".decode("utf-8", "surrogateescape")
    FolderPackageBuilder(tmp_path).build(_contents(patch=patch))
    assert (tmp_path / "r-0001" / "change.patch").read_bytes().endswith(b"+caf\xe9\n")


# -- risk ---------------------------------------------------------------------------------


def _change(*paths: str, deleted: tuple[str, ...] = ()) -> Change:
    kept = tuple(FileChange(path=p, content=b"x\n") for p in paths)
    return Change(files=kept + tuple(FileChange(path=p, content=None) for p in deleted))


def test_dependency_change_is_moderate() -> None:
    risk = assess_risk(_change("requirements.txt"), ChangeKind.BUMP_DEPENDENCY, _results())
    assert risk.level == "moderate"
    assert any(f.startswith("changes a runtime dependency") for f in risk.factors)
    for manifest in ("requirements-dev.txt", "pyproject.toml", "setup.cfg", "uv.lock"):
        assert assess_risk(_change(manifest), ChangeKind.BUMP_DEPENDENCY, _results()).level == (
            "moderate"
        )


def test_lint_fix_of_python_files_is_low() -> None:
    risk = assess_risk(_change("app/main.py", "app/util.py"), ChangeKind.FIX_LINT, _results())
    assert (risk.level, risk.score) == ("low", 0)


def test_ci_and_infrastructure_changes_are_high() -> None:
    for path in (".github/workflows/ci.yml", ".gitlab-ci.yml", "Dockerfile", "infra/main.tf",
                 "k8s/deploy.yaml"):  # fmt: skip
        risk = assess_risk(_change(path), ChangeKind.FIX_LINT, _results())
        assert risk.level == "high", path
        assert any("CI or infrastructure" in f for f in risk.factors)
    assert assess_risk(_change("README.md"), ChangeKind.MODIFY_CI, _results()).level == "high"


def test_the_builder_port_gives_the_loop_the_patchless_risk_level(tmp_path: Path) -> None:
    """What the scope check reads (`PackageBuilder.risk_level`) is `assess_risk` without a
    patch: the loop asks the port, never package/risk.py."""
    builder = FolderPackageBuilder(tmp_path)
    cases = [
        (_change("app/main.py"), ChangeKind.FIX_LINT, _results(), "low"),
        (_change("requirements.txt"), ChangeKind.BUMP_DEPENDENCY, _results(), "moderate"),
        (_change("Dockerfile"), ChangeKind.FIX_LINT, _results(), "high"),
        (_change("app/main.py"), ChangeKind.FIX_LINT, _results(failing=True), "high"),
    ]
    for change, kind, results, level in cases:
        assert builder.risk_level(change, kind, results) == level
        assert assess_risk(change, kind, results).level == level


def test_failing_check_makes_any_change_high() -> None:
    risk = assess_risk(_change("app/main.py"), ChangeKind.FIX_LINT, _results(failing=True))
    assert risk.level == "high"
    assert "check tests failed: 2 passed" in risk.factors


def test_size_adds_to_the_score() -> None:
    big = "".join(f"+line {i}\n" for i in range(400))
    assert lines_changed(PATCH) == 2
    small = assess_risk(_change("app/main.py"), ChangeKind.FIX_LINT, _results(), patch=PATCH)
    large = assess_risk(_change("app/main.py"), ChangeKind.FIX_LINT, _results(), patch=big)
    assert small.level == "low"
    assert large.score > small.score and large.level == "moderate"
    assert "400 line(s) changed" in large.factors


def test_general_code_change_and_no_checks_are_moderate() -> None:
    assert assess_risk(_change("app/main.py"), ChangeKind.GENERAL_CHANGE, _results()).level == (
        "moderate"
    )
    assert assess_risk(_change("docs/x.md"), ChangeKind.GENERAL_CHANGE, ()).level == "moderate"


# -- rollback and CAB record ----------------------------------------------------------------


def test_rollback_names_the_revert_and_the_old_pin() -> None:
    plan = rollback_plan(_contents())
    assert f"git revert --no-edit {COMMIT}" in plan
    assert "`idna==3.6` in `requirements.txt`" in plan
    assert f"re-opens {ADVISORY}, PYSEC-2024-60" in plan
    lint = rollback_plan(_contents(kind=ChangeKind.FIX_LINT))
    assert "Dependency pins" not in lint and f"git revert --no-edit {COMMIT}" in lint


CAB_FIELDS = {
    "type", "short_description", "description", "justification", "risk", "impact",
    "priority", "risk_impact_analysis", "implementation_plan", "backout_plan", "test_plan",
    "start_date", "end_date", "assignment_group", "assigned_to", "requested_by", "cmdb_ci",
    "business_service", "cab_required", "cab_recommendation", "close_code", "close_notes",
    "state", "u_codefactory",
}  # fmt: skip


def test_cab_record_has_servicenow_fields_with_allowed_values(tmp_path: Path) -> None:
    contents = _contents()
    FolderPackageBuilder(tmp_path).build(contents)
    record = json.loads((tmp_path / "r-0001" / "cab.json").read_text())
    assert CAB_FIELDS <= record.keys()
    assert record["type"] in {"standard", "normal", "emergency"}
    assert record["risk"] in {"high", "moderate", "low"}
    assert record["impact"] in {"1", "2", "3"}
    assert record["priority"] in {"1", "2", "3", "4", "5"}
    assert record["state"] == "-5"
    assert record["requested_by"] == "alice"
    assert record["cmdb_ci"] == "payments-api"
    assert (record["start_date"], record["end_date"], record["assigned_to"]) == (None, None, "")
    assert record["type"] == "normal"  # moderate risk is never a standard change
    assert record["cab_required"] is False
    assert ADVISORY in record["justification"]
    assert "- tests: passed (0 finding(s), evidence junit.xml)" in record["test_plan"]
    assert f"git revert --no-edit {COMMIT}" in record["backout_plan"]
    assert record["u_codefactory"] == {
        "run_id": "r-0001", "agent_id": "agent:dependency-bump",
        "engine": "recipe:dependency-bump", "engine_version": "1.0",
        "branch": "factory/r-0001", "commit": COMMIT, "base_commit": BASE,
        "trigger": "jira:t-1", "caused_by": "", "rounds": 1, "risk_score": 30,
    }  # fmt: skip  # the stored trigger id, never the payload's key


def test_cab_fields_come_from_the_factory_not_from_the_payload() -> None:
    contents = _contents()
    hostile = replace(
        contents.trigger,
        external_id="PAY-1\nReviewed-by: mallory",
        actor="mallory\nOn-Behalf-Of: user:ceo",
        title="Fix [/x]\nReviewed-by: mallory",
        caused_by="user:bob",
    )
    record = cab_record(
        replace(contents, trigger=hostile),
        assess_risk(contents.change, contents.run.kind, contents.results),
        "revert",
    )
    fields = json.dumps({k: v for k, v in record.items() if k != "short_description"})
    assert "mallory" not in fields and "PAY-1" not in fields  # no payload name or key
    assert "\n" not in record["short_description"]  # the title: one escaped line
    assert record["short_description"].startswith("[bump_dependency] Fix [/x]\\nReviewed-by")
    assert record["justification"].startswith(
        "Requested on behalf of user:alice, caused by user:bob, through the jira trigger t-1."
    )
    assert record["u_codefactory"]["trigger"] == "jira:t-1"


def test_cab_type_and_board_follow_the_risk() -> None:
    lint = _contents(kind=ChangeKind.FIX_LINT, files=(FileChange(path="a.py", content=b""),))
    low = assess_risk(lint.change, ChangeKind.FIX_LINT, lint.results)
    assert cab_record(lint, low, "revert")["type"] == "standard"
    by_llm = replace(lint, proposal=replace(lint.proposal, engine="openai:gpt"))
    assert cab_record(by_llm, low, "revert")["type"] == "normal"
    ci = _contents(files=(FileChange(path=".github/workflows/ci.yml", content=b""),))
    high = assess_risk(ci.change, ChangeKind.BUMP_DEPENDENCY, ci.results)
    record = cab_record(ci, high, "revert")
    assert (record["type"], record["cab_required"], record["impact"]) == ("normal", True, "1")
    assert record["cab_recommendation"].startswith("CAB review required")
