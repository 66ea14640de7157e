"""Reading forge review and merge events (`review.forge_events`) from the recorded GitHub
payloads and GitLab's documented merge request hook."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codefactory.review.forge_events import ForgeEvent, ForgeEventKind, read_forge_event
from codefactory.triggers.errors import DeliveryInvalid
from codefactory.triggers.port import Delivery
from tests.fixtures.webhooks.signed import HERE

RUN = "r-20261130-101500-a1b2c3"
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def recorded(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((HERE / name).read_bytes())
    return document


def delivery(source: str, doc: Any, event: str = "") -> Delivery:
    headers = {"x-github-event": event} if source == "github" else {}
    return Delivery(
        source=source,
        headers=headers,
        body=json.dumps(doc).encode(),
        received_at=datetime.now(UTC),
    )


def github_review(**review: Any) -> dict[str, Any]:
    doc = recorded("github/pull-request-review.submitted.approved.json")
    doc["pull_request"]["head"]["ref"] = f"factory/{RUN}"
    doc["review"].update(review)
    return doc


def test_a_github_approval_is_read_with_the_reviewed_commit_and_login() -> None:
    found = read_forge_event(delivery("github", github_review(), "pull_request_review"), "d-1")
    assert found == ForgeEvent(
        kind=ForgeEventKind.APPROVAL,
        forge="github",
        repository="Codertocat/Hello-World",
        request="2",
        branch=f"factory/{RUN}",
        commit=HEAD,
        login="Codertocat",
        review_id="237895671",
    )
    assert isinstance(found, ForgeEvent) and found.run_id == RUN


def test_changes_requested_is_read_and_other_reviews_are_not_counted() -> None:
    asked = read_forge_event(
        delivery("github", github_review(state="changes_requested"), "pull_request_review"), "d"
    )
    assert isinstance(asked, ForgeEvent) and asked.kind is ForgeEventKind.CHANGES_REQUESTED
    commented = read_forge_event(
        delivery("github", github_review(state="commented"), "pull_request_review"), "d"
    )
    assert commented == "a `commented` review neither approves nor asks for changes"
    dismissed = github_review()
    dismissed["action"] = "dismissed"
    assert "only a submitted review" in str(
        read_forge_event(delivery("github", dismissed, "pull_request_review"), "d")
    )


def test_a_github_merge_is_read_with_its_head_and_who_merged() -> None:
    doc = recorded("github/pull-request.closed.merged.json")
    doc["pull_request"]["head"]["ref"] = f"factory/{RUN}"
    found = read_forge_event(delivery("github", doc, "pull_request"), "d")
    assert isinstance(found, ForgeEvent) and found.kind is ForgeEventKind.MERGE
    assert (found.commit, found.merge_commit, found.login) == (
        HEAD,
        "c4295bd74fb0f4fda03689c3df3f2803b658fd85",
        "Codertocat",
    )
    doc["pull_request"]["merged"] = False
    assert read_forge_event(delivery("github", doc, "pull_request"), "d") == (
        "the pull request was closed without merging"
    )


def test_branches_that_are_not_the_factorys_are_ignored_whatever_they_lack() -> None:
    doc = github_review()
    doc["pull_request"]["head"]["ref"] = "feature/login"
    del doc["review"]["commit_id"]
    found = read_forge_event(delivery("github", doc, "pull_request_review"), "d")
    assert found == "the branch `feature/login` is no factory/<run-id> branch: not the factory's"


def test_other_github_events_are_not_forge_events() -> None:
    doc = recorded("github/pull-request.closed.merged.json")
    assert read_forge_event(delivery("github", doc, "issues"), "d") is None
    assert read_forge_event(delivery("jira", doc), "d") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"commit_id": "not-a-commit"}, "`review.commit_id` is no commit id"),
        ({"commit_id": None}, "`review.commit_id` is missing or empty"),
        ({"user": {"type": "User"}}, "`review.user.login` is missing or empty"),
    ],
)
def test_a_factory_branch_event_missing_what_it_needs_is_invalid(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(DeliveryInvalid, match=message):
        read_forge_event(delivery("github", github_review(**change), "pull_request_review"), "d")


@pytest.mark.parametrize(
    ("name", "kind", "merge_commit"),
    [
        ("gitlab/merge-request-hook.approved.json", ForgeEventKind.APPROVAL, ""),
        (
            "gitlab/merge-request-hook.merged.json",
            ForgeEventKind.MERGE,
            "7a2c9f3b4f41ea0b9cf6a1d1c94fc7e23d3d0b21",
        ),
    ],
)
def test_gitlab_merge_request_hooks_are_read(
    name: str, kind: ForgeEventKind, merge_commit: str
) -> None:
    doc = recorded(name)
    doc["object_attributes"]["source_branch"] = f"factory/{RUN}"
    found = read_forge_event(delivery("gitlab", doc), "d")
    assert found == ForgeEvent(
        kind=kind,
        forge="gitlab",
        repository="gitlabhq/gitlab-test",
        request="1",
        branch=f"factory/{RUN}",
        commit="da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        login="root",
        merge_commit=merge_commit,
    )


def test_other_gitlab_merge_request_actions_and_hooks_are_not_counted() -> None:
    doc = recorded("gitlab/merge-request-hook.approved.json")
    doc["object_attributes"]["action"] = "unapproved"
    doc["object_attributes"]["source_branch"] = f"factory/{RUN}"
    assert read_forge_event(delivery("gitlab", doc), "d") == (
        "a merge request `unapproved` is neither an approval nor a merge"
    )
    assert (
        read_forge_event(delivery("gitlab", recorded("gitlab/issue-hook.labeled.json")), "d")
        is None
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    source=st.sampled_from(["github", "gitlab"]),
    event=st.sampled_from(["pull_request_review", "pull_request"]),
    attributes=JSON,
    branch=st.sampled_from([f"factory/{RUN}", "main", "factory/"]),
)
def test_any_body_is_read_or_refused_by_name(
    source: str, event: str, attributes: Any, branch: str
) -> None:
    doc = {
        "action": "submitted" if event == "pull_request_review" else "closed",
        "object_kind": "merge_request",
        "review": {"state": "approved", "commit_id": attributes},
        "pull_request": {"head": {"ref": branch}, "merged": True, "number": attributes},
        "object_attributes": {"action": "approved", "source_branch": branch, "iid": attributes},
    }
    try:
        found = read_forge_event(delivery(source, doc, event), "d")
    except DeliveryInvalid:
        return
    assert found is None or isinstance(found, str | ForgeEvent)
