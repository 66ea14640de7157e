"""The diff-policy check, its default scope, thresholds and waivers (pure logic)."""

from __future__ import annotations

import json
from datetime import date

from codefactory.domain import Change, CheckResult, FileChange, Finding, Severity
from codefactory.verify.diff import DiffedChange
from codefactory.verify.diff_policy import DiffPolicyCheck
from codefactory.verify.sarif import to_sarif
from codefactory.verify.scope import GlobScope, PathDecision
from codefactory.verify.settings import DEFAULT_BLOCKED_PATHS, DiffPolicySettings, Waiver
from codefactory.verify.waivers import find_waiver, waive, waiver_uses


def check(**limits: object) -> DiffPolicyCheck:
    settings = DiffPolicySettings(**limits)  # type: ignore[arg-type]
    return DiffPolicyCheck(GlobScope(settings.blocked_paths), settings)


def files(*paths: str) -> Change:
    return Change(files=tuple(FileChange(path=p, content=b"x\n") for p in paths))


def test_the_default_scope_blocks_ci_ownership_and_infrastructure() -> None:
    scope = GlobScope(DEFAULT_BLOCKED_PATHS)
    denied = [
        ".github/workflows/ci.yml",
        ".gitlab-ci.yml",
        "Jenkinsfile",
        "CODEOWNERS",
        "deploy/prod/values.yaml",
        "modules/net/main.tf",
        "services/api/Dockerfile",
    ]
    allowed = ["service/app.py", "README.md", "requirements.txt", "docs/deploy.md"]
    decisions = scope.decide(denied + allowed)
    assert [d.allowed for d in decisions] == [False] * len(denied) + [True] * len(allowed)
    assert decisions[0].policy_ids == ("codefactory-default-scope",)
    assert ".github/**" in decisions[0].reasons[0]


def test_a_path_out_of_scope_blocks_with_its_reason() -> None:
    result = check().run(None, files("service/app.py", ".github/workflows/ci.yml"))
    assert not result.passed
    [finding] = result.findings
    assert (finding.rule, finding.path, finding.blocking) == (
        "path-out-of-scope",
        ".github/workflows/ci.yml",
        True,
    )
    assert "codefactory-default-scope" in finding.message


def test_inside_a_run_policy_decides_the_scope_so_the_check_only_reports() -> None:
    settings = DiffPolicySettings()
    deferred = DiffPolicyCheck(GlobScope(settings.blocked_paths), settings, deferred=True)
    result = deferred.run(None, files(".gitlab-ci.yml"))
    assert result.passed and not result.findings[0].blocking
    assert "policy decides" in result.findings[0].message
    assert not deferred.blocking_paths().run(None, files(".gitlab-ci.yml")).passed


def test_a_scope_policy_of_its_own_plugs_in() -> None:
    class DenyEverything:
        def decide(self, paths: list[str]) -> list[PathDecision]:
            return [
                PathDecision(path=p, allowed=False, policy_ids=("p1",), reasons=("frozen",))
                for p in paths
            ]

    result = DiffPolicyCheck(DenyEverything(), DiffPolicySettings()).run(None, files("a.py"))
    assert "frozen [p1]" in result.findings[0].message


def test_size_limits_count_changed_lines_not_file_lengths() -> None:
    big = b"".join(b"line %d\n" % n for n in range(500))
    one_line = DiffedChange(
        files=(FileChange(path="a.py", content=big.replace(b"line 7\n", b"line seven\n")),),
        base={"a.py": big},
    )
    assert check(max_lines=10).run(None, one_line).passed
    result = check(max_lines=10).run(None, DiffedChange(files=one_line.files, base={"a.py": None}))
    assert [f.rule for f in result.findings] == ["change-too-large"]
    assert [f.rule for f in check(max_files=1).run(None, files("a", "b")).findings] == [
        "change-too-large"
    ]


def test_dependency_and_tool_config_edits_are_reported_or_blocked_by_setting() -> None:
    pyproject = b'[project]\ndependencies = ["idna==3.6"]\n\n[tool.ruff]\nline-length = 100\n'
    relaxed = pyproject.replace(b"100", b"200")
    change = DiffedChange(
        files=(FileChange(path="pyproject.toml", content=relaxed),),
        base={"pyproject.toml": pyproject},
    )
    result = check().run(None, change)
    assert [(f.rule, f.blocking) for f in result.findings] == [
        ("dependency-change", False),
        ("tool-config-change", False),
    ]
    assert result.passed
    assert not check(dependency_changes="block").run(None, change).passed
    bump = DiffedChange(
        files=(FileChange(path="pyproject.toml", content=pyproject.replace(b"3.6", b"3.7")),),
        base={"pyproject.toml": pyproject},
    )
    assert [f.rule for f in check().run(None, bump).findings] == ["dependency-change"]
    assert check(dependency_changes="allow").run(None, bump).findings == ()


def sast(rule: str = "B602", path: str = "svc/app.py") -> Finding:
    return Finding(
        check="sast",
        rule=rule,
        message="m",
        severity=Severity.HIGH,
        path=path,
        line=3,
        fingerprint="fp1",
    )


def test_waivers_match_check_rule_path_fingerprint_and_lapse() -> None:
    today = date(2026, 11, 25)
    waiver = Waiver(check="sast", rule="B602", path="svc/*.py", approver="cso", reason="r")
    assert find_waiver([waiver], sast(), today) is waiver
    assert find_waiver([waiver], sast(path="other/app.py"), today) is None
    assert find_waiver([waiver], sast(rule="B307"), today) is None
    pinned = waiver.model_copy(update={"fingerprint": "other"})
    assert find_waiver([pinned], sast(), today) is None
    lapsed = waiver.model_copy(update={"expires": date(2026, 11, 24)})
    assert find_waiver([lapsed], sast(), today) is None


def test_a_wildcard_waiver_never_lifts_a_check_that_could_not_run() -> None:
    today = date(2026, 11, 25)
    crashed = Finding(check="tests", rule="tests-timed-out", message="hung", severity=Severity.HIGH)
    everything = Waiver(check="*", rule="*", approver="cso", reason="r")
    assert find_waiver([everything], crashed, today) is None
    named = Waiver(check="tests", rule="tests-timed-out", approver="cso", reason="slow suite")
    assert find_waiver([named], crashed, today) is named


def test_a_waived_finding_is_reported_with_its_approver_and_counted_for_the_audit() -> None:
    waiver = Waiver(check="sast", rule="*", approver="cso", reason="accepted risk")
    waived = waive(sast(), waiver)
    assert not waived.blocking and waived.waived_by == "cso"
    assert "[waived by cso: accepted risk]" in waived.message
    result = CheckResult(check="sast", passed=True, findings=(waived, sast(rule="B101")))
    [use] = waiver_uses([waiver], [result], date(2026, 11, 25))
    assert use.actor == "user:cso"
    assert use.as_event()["reason"] == "accepted risk" and use.as_event()["rule"] == "B602"
    [sarif] = json.loads(to_sarif("t", "1", [waived]))["runs"][0]["results"]
    assert sarif["suppressions"][0]["status"] == "accepted"
    assert sarif["suppressions"][0]["properties"]["approver"] == "cso"
