"""`approval_problem`: an approval the forge confirmed counts only for the packaged commit,
on a request from the repository itself into the expected base branch, by someone other
than the request's author."""

from __future__ import annotations

from dataclasses import replace

import pytest

from codefactory.review.forges.confirm import approval_problem
from codefactory.review.port import ConfirmedApproval

COMMIT = "a" * 40
GOOD = ConfirmedApproval(
    approved=True,
    commit=COMMIT,
    head_repository="acme/payments",
    base_repository="acme/payments",
    base_branch="main",
    author_login="priya",
)


def problem(confirmed: ConfirmedApproval, **changes: str) -> str:
    arguments = {
        "expected_repository": "acme/payments",
        "base_branch": "main",
        "packaged_commit": COMMIT,
        "reviewer_login": "omar",
    } | changes
    return approval_problem(confirmed, **arguments)


def test_an_approval_of_the_packaged_commit_from_the_repository_into_main_counts() -> None:
    assert problem(GOOD) == ""
    assert problem(replace(GOOD, commit=COMMIT.upper(), base_repository="Acme/Payments")) == ""
    assert problem(GOOD, base_branch="refs/heads/main") == ""


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"approved": False}, "holds no approval by omar"),
        ({"commit": ""}, "names no commit"),
        ({"commit": "b" * 40}, f"for commit {'b' * 40}, not the packaged commit {COMMIT}"),
        ({"commit": COMMIT[:12]}, "not the packaged commit"),
        ({"head_repository": "mallory/payments"}, "comes from a fork (mallory/payments)"),
        ({"head_repository": ""}, "comes from a fork (unnamed)"),
        ({"base_repository": "acme/other"}, "merges into acme/other"),
        ({"base_branch": "release"}, "merges into branch release, not main"),
        ({"author_login": "Omar"}, "omar opened the request and cannot approve it"),
    ],
)
def test_each_reason_an_approval_does_not_count_is_named(
    changes: dict[str, object], words: str
) -> None:
    found = problem(replace(GOOD, **changes))  # type: ignore[arg-type]
    assert words in found


def test_not_approved_is_named_before_anything_else() -> None:
    everything_wrong = ConfirmedApproval(
        approved=False,
        commit="b" * 40,
        head_repository="mallory/payments",
        base_repository="acme/other",
        base_branch="release",
        author_login="omar",
    )
    assert problem(everything_wrong) == "the forge holds no approval by omar on this request"
