"""Whether an approval the forge confirmed counts for the run's packaged change.

`ForgeHost.confirm_approval` asks the forge (with the factory's app token) what a webhook
claimed; `approval_problem` judges that answer against what the factory packaged. The
reconciler records an approval only when the problem is `""`:

    confirmed = host.confirm_approval(name, request=number, reviewer_login=login,
                                      review_id=review_id)
    problem = approval_problem(confirmed, expected_repository=name, base_branch="main",
                               packaged_commit=run.head_commit, reviewer_login=login)
"""

from __future__ import annotations

from codefactory.review.port import ConfirmedApproval


def _same(left: str, right: str) -> bool:
    """Forge names compare without case (GitHub, GitLab and Bitbucket paths and logins are
    case-insensitive; Azure DevOps names too)."""
    return left.strip().casefold() == right.strip().casefold()


def approval_problem(
    confirmed: ConfirmedApproval,
    *,
    expected_repository: str,
    base_branch: str,
    packaged_commit: str,
    reviewer_login: str,
) -> str:
    """`""` when `confirmed` is an approval of the packaged commit, by `reviewer_login`
    (who did not open the request), on a request from `expected_repository` itself (no
    fork) into `base_branch` of it; else why not, in one sentence for the audit log."""
    if not confirmed.approved:
        return f"the forge holds no approval by {reviewer_login} on this request"
    if not confirmed.commit:
        return "the forge names no commit for the approval"
    if confirmed.commit.lower() != packaged_commit.lower():
        return (
            f"the approval is for commit {confirmed.commit}, not the packaged commit "
            f"{packaged_commit}"
        )
    if not _same(confirmed.base_repository, expected_repository):
        return (
            f"the request merges into {confirmed.base_repository or 'an unnamed repository'}, "
            f"not {expected_repository}"
        )
    if not _same(confirmed.head_repository, expected_repository):
        return (
            f"the request comes from a fork ({confirmed.head_repository or 'unnamed'}), "
            f"not from {expected_repository}"
        )
    if confirmed.base_branch.removeprefix("refs/heads/") != base_branch.removeprefix("refs/heads/"):
        return (
            f"the request merges into branch {confirmed.base_branch or '(none)'}, not {base_branch}"
        )
    if confirmed.author_login and _same(confirmed.author_login, reviewer_login):
        return f"{reviewer_login} opened the request and cannot approve it"
    return ""
