"""Reconciliation: the forge's review and merge events, posted signed to the real app's
webhook endpoints (in-process, real SQLite, the real review desk), move the run or become
named audit events; an unapproved merge alerts the security role through a local Slack
stand-in (`chat.postMessage`, Slack's answer shapes)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import tests.integration.signed_people as signed_people
from codefactory.dispatch.service import build_dispatch
from codefactory.domain import RunState
from codefactory.factory import Factory
from codefactory.review.forge_events import ForgeEvent, read_forge_event
from codefactory.review.settings import NotifySettings, SlackSettings
from codefactory.triggers.port import Delivery
from codefactory.triggers.settings import RepositoryBinding, TriggerSettings
from codefactory.web.app import create_app
from tests.directory_helpers import os_account, person, write_directory
from tests.fixtures.webhooks.signed import HERE, SECRETS, headers
from tests.integration.signed_people import factory_for, run_in_review
from tests.integration.test_review_notifications import TOKEN, SlackStandIn
from tests.integration.test_webhooks import post

GITHUB_REPO = "Codertocat/Hello-World"  # the recorded GitHub payloads' repository
GITLAB_REPO = "gitlabhq/gitlab-test"  # the GitLab docs' example project
OTHER_COMMIT = "c4295bd74fb0f4fda03689c3df3f2803b658fd85"


@dataclass
class World:
    factory: Factory
    app: Any
    slack: SlackStandIn
    tmp_path: Path
    runs: int = 0

    def run(self, repository: str = GITHUB_REPO) -> str:
        """A fresh run in review on `repository` (a canonical id the forge names)."""
        self.runs += 1
        folder = self.tmp_path / f"run-{self.runs}"
        folder.mkdir()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(signed_people, "REPOSITORY", repository)
            return run_in_review(self.factory, folder)

    def head(self, run_id: str) -> str:
        return self.factory.store.require_run(run_id).head_commit

    def events(self, run_id: str = "", name: str = "") -> list[Any]:
        found = self.factory.audit.events(run_id) if run_id else self.factory.audit.events()
        return [e for e in found if not name or e.name == name]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp_path = tmp_path_factory.mktemp("forge-reconcile")
    directory = write_directory(
        tmp_path / "people" / "directory.toml",
        {
            "priya.shah": person(
                "Priya Shah", roles=["sponsor"], unix=os_account(), github="priya-gh",
                gitlab="priya-gl",
            ),
            "jordan.lee": person("Jordan Lee", roles=["reviewer"], github="jordan-gh",
                                 gitlab="root"),
            "dana": person("Dana", roles=[], github="dana-gh"),
            "mona": person("Mona", roles=["reviewer"], github="mona-gh"),
            "sam": person("Sam", roles=["security"], slack="U0SAM1234"),
        },
    )  # fmt: skip
    slack = SlackStandIn()
    token = tmp_path / "slack-token"
    token.write_text(TOKEN + "\n")
    triggers = TriggerSettings(
        secrets=dict(SECRETS),  # type: ignore[arg-type]
        repositories={GITHUB_REPO: RepositoryBinding(path=tmp_path)},
    )
    factory = factory_for(
        tmp_path,
        directory,
        triggers=triggers,
        notify=NotifySettings(slack=SlackSettings(base_url=slack.base_url, token_file=token)),
    )
    dispatch = build_dispatch(factory, workers=0)
    try:
        yield World(factory=factory, app=create_app(factory, dispatch), slack=slack,
                    tmp_path=tmp_path)  # fmt: skip
    finally:
        slack.stop()


def review(run_id: str, commit: str, login: str, *, state: str = "approved",
           branch: str = "", review_id: int = 0) -> bytes:  # fmt: skip
    """The recorded `pull_request_review.submitted` delivery about `run_id`'s request."""
    doc = json.loads((HERE / "github" / "pull-request-review.submitted.approved.json").read_bytes())
    doc["review"].update(state=state, commit_id=commit, id=review_id or abs(hash(run_id + login)))
    doc["review"]["user"]["login"] = login
    doc["pull_request"]["head"].update(ref=branch or f"factory/{run_id}", sha=commit)
    return json.dumps(doc).encode()


def merged(run_id: str, head: str, login: str = "mona-gh", *, branch: str = "") -> bytes:
    """The recorded `pull_request.closed` delivery of a merged request for `run_id`."""
    doc = json.loads((HERE / "github" / "pull-request.closed.merged.json").read_bytes())
    doc["pull_request"]["head"].update(ref=branch or f"factory/{run_id}", sha=head)
    doc["pull_request"]["merged_by"]["login"] = login
    return json.dumps(doc).encode()


def gitlab_hook(name: str, run_id: str, commit: str, user: str = "root") -> bytes:
    doc = json.loads((HERE / "gitlab" / name).read_bytes())
    doc["object_attributes"]["source_branch"] = f"factory/{run_id}"
    doc["object_attributes"]["last_commit"]["id"] = commit
    doc["user"]["username"] = user
    return json.dumps(doc).encode()


def deliver(world: World, source: str, body: bytes, event: str) -> dict[str, Any]:
    answer = post(world.app, f"/webhooks/{source}", body, headers(source, body, event=event))
    assert answer.status_code == 202, answer.text
    receipt: dict[str, Any] = answer.json()
    return receipt


def test_an_approval_by_another_directory_person_moves_the_run(world: World) -> None:
    run_id = world.run()
    receipt = deliver(world, "github", review(run_id, world.head(run_id), "jordan-gh"),
                      "pull_request_review")  # fmt: skip
    assert (receipt["status"], receipt["run_id"]) == ("done", run_id), receipt
    run = world.factory.store.require_run(run_id)
    assert run.state is not RunState.IN_REVIEW and receipt["state"] == run.state.value
    assert any(c.state is RunState.APPROVED for c in run.history)
    (recorded,) = world.events(run_id, "forge-approval-recorded")
    assert recorded.actor == "user:jordan.lee" and recorded.data["commit"] == world.head(run_id)
    (reconciled,) = world.events(run_id, "webhook-reconciled")
    assert reconciled.data["outcome"] == "forge-approval-recorded"
    assert not world.events(run_id, "trigger-received")  # never a trigger of a new run


def test_the_sponsors_own_approval_is_refused_and_the_run_stays_in_review(world: World) -> None:
    run_id = world.run()
    receipt = deliver(world, "github", review(run_id, world.head(run_id), "priya-gh"),
                      "pull_request_review")  # fmt: skip
    assert receipt["status"] == "refused" and receipt["state"] == "in_review"
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW
    (refused,) = world.events(run_id, "forge-approval-refused")
    assert "priya.shah" in refused.data["reason"]


def test_an_approval_by_someone_without_the_reviewer_role_is_refused(world: World) -> None:
    run_id = world.run()
    receipt = deliver(world, "github", review(run_id, world.head(run_id), "dana-gh"),
                      "pull_request_review")  # fmt: skip
    assert receipt["status"] == "refused"
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_an_approval_by_an_unknown_login_is_unmatched(world: World) -> None:
    run_id = world.run()
    receipt = deliver(world, "github", review(run_id, world.head(run_id), "octo-stranger"),
                      "pull_request_review")  # fmt: skip
    assert receipt["status"] == "ignored"
    assert "'octo-stranger' is not in the directory" in receipt["reason"]
    (unmatched,) = world.events(run_id, "forge-event-unmatched")
    assert unmatched.data["login"] == "octo-stranger" and unmatched.data["forge"] == "github"
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_an_event_about_an_unknown_run_is_unmatched(world: World) -> None:
    ghost = "r-20990101-000000-abcdef"
    body = review(ghost, OTHER_COMMIT, "jordan-gh")
    receipt = deliver(world, "github", body, "pull_request_review")
    assert receipt["status"] == "ignored" and receipt["run_id"] is None
    assert f"no run `{ghost}`" in receipt["reason"]
    (unmatched,) = [e for e in world.events(name="forge-event-unmatched")
                    if e.data["branch"] == f"factory/{ghost}"]  # fmt: skip
    assert unmatched.data["why"] == receipt["reason"]


def test_an_approval_from_another_repository_is_unmatched(world: World) -> None:
    run_id = world.run("acme/payments")
    receipt = deliver(world, "github", review(run_id, world.head(run_id), "jordan-gh"),
                      "pull_request_review")  # fmt: skip
    assert receipt["status"] == "ignored"
    assert "the run's repository on github is acme/payments" in receipt["reason"]
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_reviews_of_other_branches_or_without_a_verdict_start_nothing(world: World) -> None:
    before = len(world.factory.store.search_runs(limit=1000))
    other = review("x", OTHER_COMMIT, "jordan-gh", branch="feature/login")
    receipt = deliver(world, "github", other, "pull_request_review")
    assert receipt["status"] == "ignored" and "not the factory's" in receipt["reason"]
    run_id = world.run()
    comment = review(run_id, world.head(run_id), "jordan-gh", state="commented")
    receipt = deliver(world, "github", comment, "pull_request_review")
    assert receipt["status"] == "ignored" and "neither approves" in receipt["reason"]
    assert len(world.factory.store.search_runs(limit=1000)) == before + 1  # only world.run's
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_a_repeated_approval_delivery_is_answered_once(world: World) -> None:
    run_id = world.run()
    body = review(run_id, world.head(run_id), "dana-gh")
    first = deliver(world, "github", body, "pull_request_review")
    again = deliver(world, "github", body, "pull_request_review")
    assert again["duplicate"] and again["delivery_id"] == first["delivery_id"]
    assert len(world.events(run_id, "forge-approval-refused")) == 1


def alerts_for(world: World, run_id: str) -> list[dict[str, Any]]:
    return [p for p in world.slack.posts if run_id in p["text"]]


def test_an_unapproved_merge_is_audited_and_alerts_security(world: World) -> None:
    run_id = world.run()
    head = world.head(run_id)
    receipt = deliver(world, "github", merged(run_id, head), "pull_request")
    assert receipt["status"] == "done" and receipt["state"] == "in_review"
    assert "without the factory's approval" in receipt["reason"]
    (event,) = world.events(run_id, "merge-unapproved")
    assert event.actor == "user:mona"
    assert (event.data["merged_commit"], event.data["packaged_commit"]) == (head, head)
    assert event.data["merged_by"] == "mona-gh" and event.data["request"] == "2"
    assert "recorded no approval" in event.data["why"]
    (alert,) = alerts_for(world, run_id)
    assert alert["channel"] == "U0SAM1234" and "merge-unapproved" in alert["text"]
    assert "mona-gh merged github request #2" in alert["text"]
    (sent,) = world.events(run_id, "alert-sent")
    assert sent.data["to"] == "user:sam"
    # the run still waits for the factory's review: its state does not pretend otherwise
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_a_merge_of_another_commit_than_the_approved_one_alerts(world: World) -> None:
    run_id = world.run()
    deliver(world, "github", review(run_id, world.head(run_id), "jordan-gh"),
            "pull_request_review")  # fmt: skip
    receipt = deliver(world, "github", merged(run_id, OTHER_COMMIT), "pull_request")
    (event,) = world.events(run_id, "merge-unapproved")
    assert "is not the packaged commit" in event.data["why"]
    assert event.data["merged_commit"] == OTHER_COMMIT
    assert "not the packaged commit" in receipt["reason"]
    assert len(alerts_for(world, run_id)) == 1


def test_a_merge_of_the_approved_commit_is_recorded_without_alert(world: World) -> None:
    run_id = world.run()
    head = world.head(run_id)
    deliver(world, "github", review(run_id, head, "jordan-gh"), "pull_request_review")
    receipt = deliver(world, "github", merged(run_id, head), "pull_request")
    assert receipt["status"] == "done"
    (event,) = world.events(run_id, "merge-recorded")
    assert event.data["merged_commit"] == head
    assert not world.events(run_id, "merge-unapproved") and not alerts_for(world, run_id)


def test_gitlab_approvals_and_merges_are_reconciled(world: World) -> None:
    run_id = world.run(GITLAB_REPO)
    head = world.head(run_id)
    merge_first = world.run(GITLAB_REPO)
    receipt = deliver(world, "gitlab", gitlab_hook("merge-request-hook.merged.json",
                      merge_first, world.head(merge_first)), "Merge Request Hook")  # fmt: skip
    assert "without the factory's approval" in receipt["reason"]
    assert world.events(merge_first, "merge-unapproved")[0].data["forge"] == "gitlab"
    receipt = deliver(world, "gitlab", gitlab_hook("merge-request-hook.approved.json", run_id,
                      head), "Merge Request Hook")  # fmt: skip
    assert receipt["status"] == "done", receipt
    (recorded,) = world.events(run_id, "forge-approval-recorded")
    assert recorded.actor == "user:jordan.lee" and recorded.data["request"] == "1"
    receipt = deliver(world, "gitlab", gitlab_hook("merge-request-hook.merged.json", run_id,
                      head), "Merge Request Hook")  # fmt: skip
    assert world.events(run_id, "merge-recorded")


def test_changes_requested_on_the_forge_are_recorded_and_the_run_stays_in_review(
    world: World,
) -> None:
    run_id = world.run()
    body = review(run_id, world.head(run_id), "jordan-gh", state="changes_requested")
    receipt = deliver(world, "github", body, "pull_request_review")
    assert receipt["status"] == "done" and receipt["state"] == "in_review"
    (asked,) = world.events(run_id, "forge-changes-requested")
    assert asked.actor == "user:jordan.lee" and asked.data["request"] == "2"
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_the_factorys_commit_merged_from_a_copied_branch_is_matched_by_its_commit(
    world: World,
) -> None:
    run_id = world.run()
    head = world.head(run_id)
    copied = merged(run_id, head, login="priya-gh", branch="hotfix/rate")
    receipt = deliver(world, "github", copied, "pull_request")
    assert receipt["run_id"] == run_id and "without the factory's approval" in receipt["reason"]
    (event,) = world.events(run_id, "merge-unapproved")
    assert event.data["branch"] == "hotfix/rate" and event.actor == "user:priya.shah"
    assert len(alerts_for(world, run_id)) == 1
    # a merge of another branch whose head is no packaged commit is nobody's business here
    other = merged("x", OTHER_COMMIT, branch="feature/login")
    receipt = deliver(world, "github", other, "pull_request")
    assert receipt["status"] == "ignored" and receipt["run_id"] is None
    assert "no packaged commit" in receipt["reason"]


def test_a_merge_before_the_cab_or_after_a_rejection_is_unapproved(world: World) -> None:
    """The approval alone is not enough: a run still `approved` (waiting for the CAB or
    its hand-off) or `rejected` after it is not the factory's to merge."""
    store = world.factory.store
    for state, expected in (
        (RunState.APPROVED, "not handed off"),
        (RunState.REJECTED, "it was rejected"),
    ):
        run_id = world.run()
        head = world.head(run_id)
        deliver(world, "github", review(run_id, head, "jordan-gh"), "pull_request_review")
        with store.atomic() as tx:  # as the CAB gate or a QA rejection leaves it
            tx.session.execute(
                text("UPDATE runs SET state = :state WHERE id = :id"),
                {"state": state.value, "id": run_id},
            )
        receipt = deliver(world, "github", merged(run_id, head), "pull_request")
        (event,) = world.events(run_id, "merge-unapproved")
        assert f"the run is `{state.value}`" in event.data["why"] and expected in event.data["why"]
        assert "without the factory's approval" in receipt["reason"]


def test_events_of_a_forge_the_factory_does_not_publish_to_are_unmatched(world: World) -> None:
    run_id = world.run()
    assert world.factory.reconcile is not None
    gitlab_only = dataclasses.replace(world.factory.reconcile, forges=frozenset({"gitlab"}))
    delivered = Delivery(
        source="github",
        headers={"x-github-event": "pull_request_review"},
        body=review(run_id, world.head(run_id), "jordan-gh"),
        received_at=datetime.now(UTC),
    )
    event = read_forge_event(delivered, "d-1")
    assert isinstance(event, ForgeEvent)
    found = gitlab_only.reconcile(event)
    assert found.status == "ignored" and "publishes to gitlab, not github" in found.reason
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW
