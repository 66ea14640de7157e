"""Reading Azure DevOps service hook and Bitbucket (Cloud, Data Center) webhook events
(`review.forge_events`) from their documented shapes (tests/fixtures/webhooks/README.md)."""

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
from tests.unit.test_forge_events import JSON

RUN = "r-20261130-101500-a1b2c3"
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def recorded(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((HERE / name).read_bytes())
    return document


def delivery(source: str, doc: Any, key: str = "") -> Delivery:
    return Delivery(
        source=source,
        headers={"x-event-key": key} if key else {},
        body=json.dumps(doc).encode(),
        received_at=datetime.now(UTC),
    )


def azure(name: str, **resource: Any) -> dict[str, Any]:
    doc = recorded(f"azure-devops/{name}")
    doc["resource"]["sourceRefName"] = f"refs/heads/factory/{RUN}"
    doc["resource"]["lastMergeSourceCommit"]["commitId"] = HEAD
    doc["resource"].update(resource)
    return doc


def test_an_azure_vote_of_ten_is_an_approval_by_each_person_who_gave_it() -> None:
    doc = azure("git.pullrequest.updated.approved.json")
    doc["resource"]["reviewers"].append({**doc["resource"]["reviewers"][1], "uniqueName": "b@x"})
    event = read_forge_event(delivery("azure-devops", doc), "d-1")
    assert isinstance(event, ForgeEvent)
    assert (event.kind, event.forge, event.run_id) == (ForgeEventKind.APPROVAL, "azure-devops", RUN)
    assert (event.login, event.also) == ("fabrikamfiber16@hotmail.com", ("b@x",))
    assert (event.repository, event.request, event.commit) == ("Fabrikam/Fabrikam", "1", HEAD)
    assert not event.abbreviated and not event.merge_commit


@pytest.mark.parametrize("vote", [5, 0, -5, -10, "10"])
def test_any_other_azure_vote_approves_nothing(vote: object) -> None:
    doc = azure("git.pullrequest.updated.approved.json")
    doc["resource"]["reviewers"][1]["vote"] = vote
    found = read_forge_event(delivery("azure-devops", doc), "d-1")
    assert isinstance(found, str) and "is 10 (approved)" in found


def test_an_azure_completed_merge_is_a_merge_and_an_attempt_is_not() -> None:
    event = read_forge_event(delivery("azure-devops", azure("git.pullrequest.merged.json")), "d")
    assert isinstance(event, ForgeEvent) and event.kind is ForgeEventKind.MERGE
    assert (event.login, event.commit) == ("fabrikamfiber4@hotmail.com", HEAD)
    assert event.merge_commit == "eef717f69257a6333f1fb5a3b2c6ff8d4f2d2a1a"
    attempt = azure("git.pullrequest.merged.json", status="active")
    assert "merge attempt" in str(read_forge_event(delivery("azure-devops", attempt), "d"))
    other = azure("git.pullrequest.merged.json")
    other["eventType"] = "git.push"
    assert read_forge_event(delivery("azure-devops", other), "d") is None


def test_an_azure_event_on_another_branch_or_without_its_fields() -> None:
    doc = azure("git.pullrequest.updated.approved.json", sourceRefName="refs/heads/feature/x")
    assert "not the factory's" in str(read_forge_event(delivery("azure-devops", doc), "d"))
    # a merge of any branch is read: the factory's commit may travel on a copied branch
    doc = azure("git.pullrequest.merged.json", sourceRefName="refs/heads/feature/x")
    merged = read_forge_event(delivery("azure-devops", doc), "d")
    assert isinstance(merged, ForgeEvent) and not merged.on_factory_branch and not merged.run_id
    doc = azure("git.pullrequest.merged.json")
    doc["resource"]["lastMergeSourceCommit"]["commitId"] = "HEAD"
    with pytest.raises(DeliveryInvalid, match="lastMergeSourceCommit.commitId"):
        read_forge_event(delivery("azure-devops", doc), "d")


def cloud(name: str, head: str = HEAD[:12]) -> dict[str, Any]:
    doc = recorded(f"bitbucket/{name}")
    doc["pullrequest"]["source"]["branch"]["name"] = f"factory/{RUN}"
    doc["pullrequest"]["source"]["commit"]["hash"] = head
    return doc


def test_bitbucket_cloud_approvals_and_merges_keep_the_abbreviated_hash() -> None:
    approved = read_forge_event(
        delivery("bitbucket", cloud("cloud.pullrequest-approved.json"), "pullrequest:approved"),
        "d",
    )
    assert isinstance(approved, ForgeEvent) and approved.kind is ForgeEventKind.APPROVAL
    assert (approved.commit, approved.abbreviated) == (HEAD[:12], True)
    assert approved.login == "712020:5b2c6f0e-1d3a-4c8b-9e7f-0a1b2c3d4e5f"
    assert (approved.repository, approved.request) == ("acme-bank/payments-api", "42")
    merged = read_forge_event(
        delivery("bitbucket", cloud("cloud.pullrequest-fulfilled.json"), "pullrequest:fulfilled"),
        "d",
    )
    assert isinstance(merged, ForgeEvent) and merged.kind is ForgeEventKind.MERGE
    assert merged.merge_commit == "764413d85e29"
    full = read_forge_event(
        delivery(
            "bitbucket", cloud("cloud.pullrequest-approved.json", HEAD), "pullrequest:approved"
        ),
        "d",
    )
    assert isinstance(full, ForgeEvent) and not full.abbreviated


def test_bitbucket_data_center_approvals_needs_work_and_merges() -> None:
    def dc(name: str, key: str) -> ForgeEvent | str | None:
        doc = recorded(f"bitbucket/{name}")
        doc["pullRequest"]["fromRef"].update(displayId=f"factory/{RUN}", latestCommit=HEAD)
        return read_forge_event(delivery("bitbucket", doc, key), "d")

    approved = dc("dc.pr-reviewer-approved.json", "pr:reviewer:approved")
    assert isinstance(approved, ForgeEvent) and approved.kind is ForgeEventKind.APPROVAL
    assert (approved.login, approved.repository, approved.commit) == (
        "user",
        "PROJ/repository",
        HEAD,
    )
    work = dc("dc.pr-reviewer-approved.json", "pr:reviewer:needs_work")
    assert isinstance(work, ForgeEvent) and work.kind is ForgeEventKind.CHANGES_REQUESTED
    merged = dc("dc.pr-merged.json", "pr:merged")
    assert isinstance(merged, ForgeEvent) and merged.kind is ForgeEventKind.MERGE
    assert merged.merge_commit == "7e48f426f0a6e47c5c5e8a4ed4f7f73de2e2f9f6"
    assert dc("dc.pr-merged.json", "repo:refs_changed") is None


@settings(max_examples=150, deadline=None)
@given(
    source_key=st.sampled_from(
        [
            ("azure-devops", ""),
            ("bitbucket", "pullrequest:approved"),
            ("bitbucket", "pullrequest:fulfilled"),
            ("bitbucket", "pr:reviewer:approved"),
            ("bitbucket", "pr:merged"),
        ]
    ),
    path=st.lists(
        st.sampled_from(
            [
                "resource",
                "pullrequest",
                "pullRequest",
                "source",
                "commit",
                "hash",
                "fromRef",
                "reviewers",
                "eventType",
                "status",
            ]
        ),
        min_size=1,
        max_size=3,
    ),
    value=JSON,
)
def test_any_grafted_body_is_read_or_refused_never_an_error(
    source_key: tuple[str, str], path: list[str], value: object
) -> None:
    source, key = source_key
    if source == "azure-devops":
        doc = azure("git.pullrequest.updated.approved.json")
    elif key.startswith("pullrequest:"):
        doc = cloud("cloud.pullrequest-approved.json")
    else:
        doc = recorded("bitbucket/dc.pr-merged.json")
        doc["pullRequest"]["fromRef"]["displayId"] = f"factory/{RUN}"
    node: Any = doc
    for step in path[:-1]:
        if not isinstance(node, dict):
            break
        node = node.setdefault(step, {})
    if isinstance(node, dict):
        node[path[-1]] = value
    try:
        found = read_forge_event(delivery(source, doc, key), "d")
    except DeliveryInvalid as err:
        assert err.source == source
        return
    assert found is None or isinstance(found, str | ForgeEvent)
