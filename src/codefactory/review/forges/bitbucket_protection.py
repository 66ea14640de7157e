"""Bitbucket's branch rules read as `BranchProtection` (pure: the host fetches, this maps).

Cloud (developer.atlassian.com/cloud/bitbucket/rest/api-group-branch-restrictions): the
`branchrestriction`s whose glob `pattern`, or branching-model `branch_type`, matches the
branch. Merge checks (`require_*`) bind only with `enforce_merge_checks` (Premium's "Prevent
a merge with unresolved merge checks"); without it they are warnings anyone may merge past.

Data Center: ref restrictions (`/rest/branch-permissions/2.0`), the repository's pull request
settings (`/rest/api/1.0/.../settings/pull-requests`), default reviewer conditions
(`/rest/default-reviewers/1.0`) and required builds conditions (`/rest/required-builds/
latest`), each matched by its ref matcher.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from codefactory.review.port import BranchProtection

FACTORY_REF = "refs/heads/factory/run"
"""Stands for the factory's source branches (`factory/<run-id>`) when a required builds
condition exempts source branches: an exemption matching it frees the factory's requests."""
_APPROVAL_KINDS = ("require_approvals_to_merge", "require_default_reviewer_approvals_to_merge")
_RESET_KINDS = ("reset_pullrequest_approvals_on_change", "smart_reset_pullrequest_approvals")


def cloud_matches(item: Mapping[str, Any], branch: str, model: Mapping[str, Any]) -> bool:
    """Whether Cloud restriction `item` applies to `branch` (`model`: the repository's
    branching model, needed only for `branch_match_kind: branching_model`)."""
    if item.get("branch_match_kind") == "branching_model":
        kind = str(item.get("branch_type", ""))
        if kind in ("development", "production"):
            named = ((model.get(kind) or {}).get("branch") or {}).get("name")
            return bool(named) and named == branch
        for branch_type in model.get("branch_types") or []:
            if isinstance(branch_type, dict) and branch_type.get("kind") == kind:
                prefix = str(branch_type.get("prefix") or "")
                return bool(prefix) and branch.startswith(prefix)
        return False
    return fnmatch.fnmatchcase(branch, str(item.get("pattern", "")))


def cloud_protection(
    branch: str, matching: Iterable[Mapping[str, Any]], *, status_context: str
) -> BranchProtection:
    """`matching`: the Cloud restrictions that apply to `branch`.

    Protected by a `push` restriction (its `users`/`groups` push without review:
    `admins_bypass`); approvals the largest `value` of `require_approvals_to_merge` /
    `require_default_reviewer_approvals_to_merge`; the gate required by
    `require_passing_builds_to_merge` (no failed build may remain, so the gate's status
    counts) — both only with `enforce_merge_checks`; stale approvals dismissed by
    `reset_pullrequest_approvals_on_change` or `smart_reset_pullrequest_approvals`."""
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for item in matching:
        by_kind.setdefault(str(item.get("kind")), []).append(item)
    enforced = "enforce_merge_checks" in by_kind
    approvals = max(
        (int(i.get("value") or 0) for k in _APPROVAL_KINDS for i in by_kind.get(k, [])),
        default=0,
    )
    builds = max(
        (int(i.get("value") or 0) for i in by_kind.get("require_passing_builds_to_merge", [])),
        default=0,
    )
    pushes = by_kind.get("push", [])
    return BranchProtection(
        branch=branch,
        protected=bool(pushes),
        required_approvals=approvals if enforced else 0,
        dismisses_stale_approvals=any(k in by_kind for k in _RESET_KINDS),
        admins_bypass=any(i.get("users") or i.get("groups") for i in pushes),
        required_checks=(status_context,) if enforced and builds else (),
    )


def dc_matches(matcher: Any, ref: str) -> bool:
    """A Data Center ref matcher (`BRANCH` by ref id, `PATTERN` a glob over the branch name
    or ref, `ANY_REF`); branching-model matchers (`MODEL_BRANCH`, `MODEL_CATEGORY`) are not
    resolved and match nothing."""
    if not isinstance(matcher, dict):
        return False
    kind = str((matcher.get("type") or {}).get("id", ""))
    if kind == "ANY_REF":
        return True
    if kind == "BRANCH":
        return matcher.get("id") == ref
    if kind == "PATTERN":
        pattern = str(matcher.get("id", ""))
        name = ref.removeprefix("refs/heads/")
        return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(ref, pattern)
    return False


def dc_protection(
    branch: str,
    *,
    restrictions: Iterable[Mapping[str, Any]],
    settings: Mapping[str, Any],
    reviewer_conditions: Iterable[Mapping[str, Any]],
    build_conditions: Iterable[Mapping[str, Any]],
    status_context: str,
) -> BranchProtection:
    """Data Center's rules on `branch`: a matching `pull-request-only` or `read-only` ref
    restriction protects it (its exempted users, groups or access keys bypass); approvals
    are the larger of `requiredApprovers` and the matching default reviewer conditions'
    `requiredApprovals`; the gate is required by `requiredSuccessfulBuilds` (at least one,
    and no failed build) and matching required builds conditions name their
    `buildParentKeys` (unless their `exemptRefMatcher` exempts the factory's branches);
    `unapproveOnUpdate` dismisses stale approvals."""
    ref = f"refs/heads/{branch}"
    guarding = [
        item
        for item in restrictions
        if item.get("type") in ("pull-request-only", "read-only")
        and dc_matches(item.get("matcher"), ref)
    ]
    approvals = max(
        [
            int(settings.get("requiredApprovers") or 0),
            *(
                int(c.get("requiredApprovals") or 0)
                for c in reviewer_conditions
                if dc_matches(c.get("targetRefMatcher"), ref)
            ),
        ]
    )
    checks = [status_context] if int(settings.get("requiredSuccessfulBuilds") or 0) else []
    for condition in build_conditions:
        if dc_matches(condition.get("refMatcher"), ref) and not dc_matches(
            condition.get("exemptRefMatcher"), FACTORY_REF
        ):
            checks.extend(str(k) for k in condition.get("buildParentKeys") or [])
    return BranchProtection(
        branch=branch,
        protected=bool(guarding),
        required_approvals=approvals,
        dismisses_stale_approvals=bool(settings.get("unapproveOnUpdate")),
        admins_bypass=any(
            item.get("users") or item.get("groups") or item.get("accessKeys") for item in guarding
        ),
        required_checks=tuple(dict.fromkeys(checks)),
    )
