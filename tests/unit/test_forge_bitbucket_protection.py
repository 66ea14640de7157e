"""Bitbucket's branch rules read as BranchProtection (pure mapping)."""

from __future__ import annotations

from typing import Any

from codefactory.review.forges.bitbucket_protection import (
    cloud_matches,
    cloud_protection,
    dc_matches,
    dc_protection,
)

GATE = "codefactory/gate"


def _cloud(kind: str, value: int | None = None, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "value": value, "branch_match_kind": "glob", "pattern": "main", **extra}


def test_cloud_takes_the_strictest_matching_approval_count() -> None:
    found = cloud_protection(
        "main",
        [
            _cloud("push"),
            _cloud("require_approvals_to_merge", 1),
            _cloud("require_approvals_to_merge", 3, pattern="*"),
            _cloud("require_default_reviewer_approvals_to_merge", 2),
            _cloud("enforce_merge_checks"),
            _cloud("smart_reset_pullrequest_approvals"),
        ],
        status_context=GATE,
    )
    assert found.required_approvals == 3 and found.dismisses_stale_approvals
    assert found.required_checks == ()  # no build merge check
    assert found.gaps(status_context=GATE) == [
        "the gate's verdict (codefactory/gate) is not a required check"
    ]


def test_cloud_merge_checks_without_enforcement_bind_nobody() -> None:
    rules = [_cloud("push"), _cloud("require_approvals_to_merge", 2)]
    rules.append(_cloud("require_passing_builds_to_merge", 1))
    found = cloud_protection("main", rules, status_context=GATE)
    assert found.protected and found.required_approvals == 0 and found.required_checks == ()


def test_cloud_branch_matching() -> None:
    model = {
        "development": {"branch": {"name": "develop"}},
        "branch_types": [{"kind": "release", "prefix": "release/"}],
    }
    by_type = {"branch_match_kind": "branching_model", "branch_type": "release"}
    assert cloud_matches(by_type, "release/1.0", model)
    assert not cloud_matches(by_type, "main", model)
    assert cloud_matches(
        {"branch_match_kind": "branching_model", "branch_type": "development"}, "develop", model
    )
    assert not cloud_matches(
        {"branch_match_kind": "branching_model", "branch_type": "production"}, "main", model
    )  # no production branch in the model
    assert cloud_matches({"branch_match_kind": "glob", "pattern": "release/*"}, "release/1.0", {})
    assert not cloud_matches({"branch_match_kind": "glob", "pattern": "mai"}, "main", {})


def test_data_center_matchers() -> None:
    def matcher(kind: str, value: str) -> dict[str, Any]:
        return {"id": value, "type": {"id": kind}}

    assert dc_matches(matcher("BRANCH", "refs/heads/main"), "refs/heads/main")
    assert not dc_matches(matcher("BRANCH", "refs/heads/main"), "refs/heads/mainline")
    assert dc_matches(matcher("PATTERN", "release/*"), "refs/heads/release/2")
    assert dc_matches(matcher("ANY_REF", "ANY_REF_MATCHER_ID"), "refs/heads/x")
    assert not dc_matches(matcher("MODEL_BRANCH", "production"), "refs/heads/main")
    assert not dc_matches(None, "refs/heads/main")


def test_data_center_without_a_pull_request_only_restriction_is_unprotected() -> None:
    found = dc_protection(
        "main",
        restrictions=[
            {"type": "no-deletes", "matcher": {"id": "refs/heads/main", "type": {"id": "BRANCH"}}}
        ],
        settings={"requiredApprovers": 2, "requiredSuccessfulBuilds": 1},
        reviewer_conditions=[],
        build_conditions=[],
        status_context=GATE,
    )
    assert not found.protected and found.required_approvals == 2
    assert found.required_checks == (GATE,)
