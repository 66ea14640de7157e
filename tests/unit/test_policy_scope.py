"""The second check: one Cedar request per touched path, on the shipped default and examples.

Real cedarpy evaluation (`is_authorized_batch`); paths are entities under their directories.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codefactory.domain import Change, FileChange
from codefactory.policy.cedar import CedarPolicy, default_policy_path, examples_path, schema_path
from codefactory.policy.paths import implied_actions, path_entities
from codefactory.policy.port import AuthorizationRequest, EntityRef
from codefactory.policy.scope import ScopeDecision, check_change_scope

REPO = EntityRef(type="Repository", id="sample-service")


def change(*paths: str) -> Change:
    return Change(files=tuple(FileChange(path=p, content=b"x = 1\n") for p in paths))


def scope(
    policy: CedarPolicy, source: str, paths: tuple[str, ...], **context: Any
) -> ScopeDecision:
    base: dict[str, Any] = {"sponsor": "priya.shah", "labels": [], "source": source}
    return check_change_scope(
        policy,
        principal=EntityRef(type="TriggerSource", id=source),
        repository=REPO,
        change=change(*paths),
        context={**base, "diff_files": len(paths), "diff_bytes": 6 * len(paths), **context},
    )


@pytest.fixture(scope="module")
def default() -> CedarPolicy:
    return CedarPolicy.default()


@pytest.fixture(scope="module")
def with_examples() -> CedarPolicy:
    return CedarPolicy.from_files(default_policy_path(), examples_path())


def test_paths_imply_dependency_ci_and_infrastructure_actions() -> None:
    assert implied_actions("requirements.txt") == ("modify_dependencies",)
    assert implied_actions("svc/package-lock.json") == ("modify_dependencies",)
    assert implied_actions(".github/workflows/ci.yml") == ("modify_ci",)
    assert implied_actions(".gitlab-ci.yml") == ("modify_ci",)
    assert implied_actions("deploy/terraform/main.tf") == ("modify_infrastructure",)
    assert implied_actions("Dockerfile") == ("modify_infrastructure",)
    assert implied_actions("src/service/app.py") == ()


def test_path_entities_sit_under_their_directories_and_repository() -> None:
    entities = {
        (e["uid"]["type"], e["uid"]["id"]): e for e in path_entities("r", ["a/b/c.py", "d.py"])
    }
    assert entities[("Path", "a/b/c.py")]["parents"] == [{"type": "Directory", "id": "a/b"}]
    assert entities[("Directory", "a/b")]["parents"] == [{"type": "Directory", "id": "a"}]
    assert entities[("Directory", "a")]["parents"] == [{"type": "Repository", "id": "r"}]
    assert entities[("Path", "d.py")]["parents"] == [{"type": "Repository", "id": "r"}]


def test_routine_changes_open_prs_and_bumps_may_edit_manifests(default: CedarPolicy) -> None:
    lint = scope(default, "jira", ("service/hostnames.py",), kind="fix_lint")
    assert lint.allowed and lint.delivery == "open_pr"
    assert lint.decision.policy_ids == ("routine-changes-open-pull-requests",)
    bump = scope(default, "jira", ("requirements.txt",), kind="bump_dependency")
    assert bump.allowed and "dependency-bumps-edit-manifests" in bump.decision.policy_ids


def test_a_lint_fix_that_edits_a_manifest_or_ci_is_refused_naming_the_path(
    default: CedarPolicy,
) -> None:
    manifest = scope(default, "jira", ("service/a.py", "requirements.txt"), kind="fix_lint")
    assert not manifest.allowed
    assert [(v.path, v.action) for v in manifest.denied] == [
        ("requirements.txt", "modify_dependencies")
    ]
    assert (
        "no policy permits modify_dependencies (default deny) (requirements.txt)"
        in manifest.decision.summary
    )
    ci = scope(default, "jira", (".github/workflows/ci.yml",), kind="fix_lint")
    assert not ci.allowed and ci.decision.policy_ids == ("no-autonomous-ci-changes",)
    error = ci.error()
    assert error is not None and error.path == ".github/workflows/ci.yml"
    assert error.policy_ids == ("no-autonomous-ci-changes",)


def test_oversized_changes_are_refused(default: CedarPolicy) -> None:
    big = scope(default, "jira", ("service/a.py",), kind="fix_lint", diff_files=51)
    assert not big.allowed and "no-oversized-changes" in big.decision.policy_ids


def test_the_shipped_policies_conform_to_the_documented_schema(with_examples: CedarPolicy) -> None:
    schema = schema_path().read_text()
    assert with_examples.validate(schema) == []
    broken = CedarPolicy(
        '@id("x")\n@reason("y")\npermit (principal, action, resource) when { context.nope > 1 };'
    )
    assert broken.validate(schema) != []


# --- the shipped examples, each tested ---------------------------------------------------


def test_a_sentry_alert_may_only_open_a_draft_pr_touching_src(with_examples: CedarPolicy) -> None:
    ctx: Mapping[str, Any] = {"kind": "general_change", "autonomous": True}
    in_src = scope(with_examples, "sentry", ("src/app/views.py", "src/app/util.py"), **ctx)
    assert in_src.allowed and in_src.delivery == "open_draft_pr"
    assert in_src.decision.policy_ids == ("sentry-drafts-in-src",)
    outside = scope(with_examples, "sentry", ("src/app/views.py", "tests/test_views.py"), **ctx)
    assert not outside.allowed and outside.delivery == "open_draft_pr"
    assert [v.path for v in outside.denied] == ["tests/test_views.py"]
    dependency = scope(with_examples, "sentry", ("src/requirements.txt",), **ctx)
    assert not dependency.allowed
    assert "sentry-no-dependencies-ci-or-infrastructure" in dependency.decision.policy_ids
    ci = scope(with_examples, "sentry", ("src/.github/workflows/x.yml",), **ctx)
    assert not ci.allowed
    intake = with_examples.authorize(
        principal='TriggerSource::"sentry"',
        action="general_change",
        resource='Repository::"sample-service"',
        context={"sponsor": "priya.shah", "labels": [], "source": "sentry"},
    )
    assert intake.allowed and intake.policy_ids == ("sentry-may-start-fixes",)


def test_a_ready_jira_ticket_labelled_agent_ok_may_open_a_pr(with_examples: CedarPolicy) -> None:
    ready = {"kind": "general_change", "status": "Ready", "labels": ["agent-ok"]}
    assert scope(with_examples, "jira", ("service/a.py",), **ready).delivery == "open_pr"
    assert scope(with_examples, "jira", ("service/a.py",), **ready).allowed
    assert not scope(
        with_examples, "jira", ("service/a.py",), **{**ready, "status": "In Progress"}
    ).allowed
    assert not scope(with_examples, "jira", ("service/a.py",), **{**ready, "labels": []}).allowed
    assert not scope(with_examples, "github", ("service/a.py",), **ready).allowed
    intake = with_examples.authorize(
        principal='TriggerSource::"jira"',
        action="general_change",
        resource='Repository::"sample-service"',
        context={
            "sponsor": "priya.shah",
            "labels": {"agent-ok"},
            "source": "jira",
            "status": "Ready",
        },
    )
    assert intake.policy_ids == ("jira-ready-agent-ok-may-start",)


@pytest.mark.parametrize(
    "path", ["src/payments/ledger.py", "payments/api.py", "lib/payment_gateway.py"]
)
def test_no_autonomous_trigger_may_touch_payment_paths(
    with_examples: CedarPolicy, path: str
) -> None:
    autonomous = scope(with_examples, "schedule", (path,), kind="fix_lint", autonomous=True)
    assert not autonomous.allowed
    assert autonomous.decision.policy_ids == ("no-autonomous-payment-changes",)
    human = scope(with_examples, "jira", (path,), kind="fix_lint", autonomous=False)
    assert human.allowed


def test_only_named_humans_may_sponsor_runs_on_payments_service(with_examples: CedarPolicy) -> None:
    def ask(sponsor: str) -> bool:
        return with_examples.authorize(
            principal='TriggerSource::"jira"',
            action="fix_lint",
            resource='Repository::"acme/payments-service"',
            context={"sponsor": sponsor, "labels": [], "source": "jira"},
        ).allowed

    assert ask("priya.shah") and ask("jordan.lee")
    assert not ask("mallory")
    # another repository whose folder is also called payments-service is not this one
    assert with_examples.authorize(
        principal='TriggerSource::"jira"',
        action="fix_lint",
        resource='Repository::"someone/payments-service"',
        context={"sponsor": "mallory", "labels": [], "source": "jira"},
    ).allowed
    assert with_examples.authorize(
        principal='TriggerSource::"jira"',
        action="fix_lint",
        resource='Repository::"sample-service"',
        context={"sponsor": "mallory", "labels": [], "source": "jira"},
    ).allowed


def test_a_batch_decides_each_request_in_order(default: CedarPolicy) -> None:
    requests = [
        AuthorizationRequest(
            principal=EntityRef(type="TriggerSource", id="cli"),
            action=action,
            resource=REPO,
            context={"sponsor": "a"},
        )
        for action in ("fix_lint", "modify_ci", "general_change")
    ]
    assert [d.allowed for d in default.authorize_batch(requests)] == [True, False, False]
    assert default.authorize_batch([]) == []


def test_a_policy_folder_loads_every_file(tmp_path: Path) -> None:
    (tmp_path / "a.cedar").write_text(
        '@id("a")\n@reason("r")\npermit (principal, action, resource);'
    )
    (tmp_path / "b.cedar").write_text(
        '@id("b")\n@reason("r")\nforbid (principal, action, resource);'
    )
    assert CedarPolicy.from_file(tmp_path).policy_ids == ("a", "b")


@given(
    paths=st.lists(
        st.text(alphabet='paymentsrc/._-"\\\n é', min_size=1, max_size=20),
        min_size=1,
        max_size=6,
        unique=True,
    )
)
@settings(max_examples=60, deadline=None)
def test_any_path_is_asked_about_and_payment_paths_are_never_allowed_autonomously(
    paths: list[str],
) -> None:
    policy = CedarPolicy.from_files(default_policy_path(), examples_path())
    decided = scope(policy, "schedule", tuple(paths), kind="fix_lint", autonomous=True)
    asked = {(v.path, v.action) for v in decided.verdicts}
    assert {p for p, _ in asked} == set(paths)
    if any("payment" in p for p in paths):
        assert not decided.allowed
