"""Azure DevOps end to end through the factory: a packaged run pushed over git smart HTTP at
Azure's `/{project}/_git/{repo}` path, its draft pull request opened under the sponsor's own
token, its status set under the factory's; then the service hooks coming back, authenticated
with the subscription's Basic password on the real app's `POST /webhooks/azure-devops`: a
vote of 10 by another directory person approves the run, a merge nobody approved is audited
and alerts security through a Slack stand-in."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.integration.signed_people as signed_people
from codefactory.config import Settings
from codefactory.dispatch.service import build_dispatch
from codefactory.domain import RunState
from codefactory.factory import Factory, build_factory
from codefactory.review.forges.azure_devops import DESCRIPTION_MAX, TRUNCATED_NOTE, authorization
from codefactory.review.forges.publishing import request_body
from codefactory.review.forges.settings import ForgeSettings
from codefactory.review.settings import NotifySettings, SlackSettings
from codefactory.runs.tickets import accept_ticket
from codefactory.store.deliveries import DeliveryQueue
from codefactory.triggers.settings import RepositoryBinding, TriggerSettings
from codefactory.web.app import create_app
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service
from tests.directory_helpers import person, standard_people, write_directory
from tests.fixtures.webhooks.signed import HERE
from tests.forge_standins.azure_devops import (
    APP_PAT,
    FACTORY,
    MINIMUM_REVIEWERS,
    PROJECT,
    REPOSITORY,
    SPONSOR,
    SPONSOR_PAT,
    AzureDevOpsStandin,
    policy,
    scope,
)
from tests.forge_standins.git_http import GitHttpStandin, git
from tests.forge_standins.recording import running
from tests.integration.signed_people import factory_for, run_in_review
from tests.integration.test_review_notifications import TOKEN, SlackStandIn
from tests.integration.test_webhooks import post

REPO = f"{PROJECT}/{REPOSITORY}"
SERVED = f"{PROJECT}/_git/{REPOSITORY}"  # the git stand-in's name for Azure's remote path
SECRET = "ado-basic-password-for-tests"
REVIEWER = "alice@acme-bank.example"
OTHER_COMMIT = "c4295bd74fb0f4fda03689c3df3f2803b658fd85"


def basic(password: str = SECRET, user: str = "codefactory") -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}", "Content-Type": "application/json"}


def vote(reviewer: str, value: int = 10, *, container: bool = False) -> dict[str, Any]:
    """An `IdentityRefWithVote` as the service hook lists it in `resource.reviewers`."""
    return {
        "vote": value,
        "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, reviewer)),
        "displayName": reviewer.split("@")[0].title(),
        "uniqueName": reviewer,
        "isContainer": container,
    }


def hook(name: str, branch: str, head: str, **resource: Any) -> bytes:
    """The documented event `name` about the factory's request on `branch` at `head`."""
    doc = json.loads((HERE / "azure-devops" / name).read_bytes())
    doc["id"] = str(uuid.uuid4())
    pull = doc["resource"]
    pull["sourceRefName"] = f"refs/heads/{branch}"
    pull["repository"]["name"] = REPOSITORY
    pull["repository"]["project"]["name"] = PROJECT
    pull["lastMergeSourceCommit"]["commitId"] = head
    pull.update(resource)
    return json.dumps(doc).encode()


def receipt_number(body: bytes) -> int:
    number: int = json.loads(body)["resource"]["pullRequestId"]
    return number


def deliver(app: Any, body: bytes, sent: dict[str, str] | None = None) -> httpx.Response:
    return post(app, "/webhooks/azure-devops", body, sent or basic())


def directory(folder: Path) -> Path:
    people = standard_people()
    people["priya.shah"]["identities"]["azure-devops"] = [SPONSOR]
    people["alice"] = person("Alice", roles=["reviewer"], **{"azure-devops": REVIEWER})
    people["sam"] = person("Sam", roles=["security"], slack="U0SAM1234")
    return write_directory(folder / "directory.toml", people)


@pytest.fixture
def standins(tmp_path: Path) -> Iterator[tuple[GitHttpStandin, AzureDevOpsStandin, SlackStandIn]]:
    git_host = GitHttpStandin(tmp_path / "azure-git", authorization=authorization(APP_PAT))
    slack = SlackStandIn()
    try:
        for api in running(AzureDevOpsStandin()):
            yield git_host, api, slack
    finally:
        slack.stop()
        git_host.stop()


def settings_for(
    tmp_path: Path,
    uv_cache: Path,
    repo: Path,
    api: AzureDevOpsStandin,
    git_host: GitHttpStandin,
    slack: SlackStandIn,
) -> Settings:
    token_file = tmp_path / "azure-app-pat"
    token_file.write_text(APP_PAT + "\n")
    slack_token = tmp_path / "slack-token"
    slack_token.write_text(TOKEN + "\n")
    return Settings(
        data_dir=data_dir_sharing_cache(tmp_path / "data", uv_cache),
        triggers=TriggerSettings(
            secrets={"azure-devops": SECRET},  # type: ignore[dict-item]
            repositories={REPO: RepositoryBinding(path=repo)},
        ),
        forge=ForgeSettings(
            type="azure-devops",
            base_url=api.org_url,
            git_url=git_host.url,
            token_file=token_file,
            user_tokens={"priya.shah": SPONSOR_PAT},
        ),
        notify=NotifySettings(slack=SlackSettings(base_url=slack.base_url, token_file=slack_token)),
    )


def events(factory: Factory, run_id: str) -> dict[str, dict[str, Any]]:
    return {e.name: {**e.data, "actor": e.actor} for e in factory.store.audit_events(run_id)}


@pytest.mark.usefixtures("bwrap_available")
def test_a_run_is_published_to_azure_devops_approved_by_a_vote_and_an_unapproved_merge_alerts(
    tmp_path: Path,
    uv_cache: Path,
    standins: tuple[GitHttpStandin, AzureDevOpsStandin, SlackStandIn],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    git_host, api, slack = standins
    repo = sample_service(tmp_path / "sample-service")
    git_host.create(SERVED, seed=repo)
    api.git_head = lambda ref: git_host.head(SERVED, ref.removeprefix("refs/heads/"))
    monkeypatch.setenv("CODEFACTORY_IDENTITY__DIRECTORY_FILE", str(directory(tmp_path / "people")))
    factory = build_factory(settings_for(tmp_path, uv_cache, repo, api, git_host, slack))
    ticket = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()
    run = accept_ticket(factory, payload=ticket, repo=repo)
    assert run.state is RunState.IN_REVIEW, run.reason
    assert run.repository == REPO and run.sponsor == "priya.shah"

    # pushed at the signed commit over Azure's /{project}/_git/{repo} path, token off argv
    assert git_host.head(SERVED, run.branch) == run.head_commit
    assert {r.path.split("/_git/")[0] for r in git_host.requests} == {f"/{PROJECT}"}
    assert git_host.argv_leaks == []
    assert "-----BEGIN SSH SIGNATURE-----" in git(
        git_host.root / f"{SERVED}.git", "cat-file", "commit", run.head_commit
    )
    (pull,) = api.pulls  # a draft, opened under the sponsor's own token with the package
    assert pull["lastMergeSourceCommit"]["commitId"] == run.head_commit
    assert pull["createdBy"]["uniqueName"] == SPONSOR and pull["isDraft"] is True
    assert pull["sourceRefName"] == f"refs/heads/{run.branch}"
    assert pull["targetRefName"] == "refs/heads/main" and pull["title"].startswith("SVC-102")
    risk = json.loads((Path(run.package_dir) / "risk.json").read_text())
    local = factory.loop.forge.repository_path(run.repository)
    body = request_body(run, Path(run.package_dir), host_paths=(str(local), str(local.resolve())))
    description = pull["description"]  # Azure keeps 4,000 characters: a longer body is cut
    if len(body) > DESCRIPTION_MAX:
        assert len(description) <= DESCRIPTION_MAX and description.endswith(TRUNCATED_NOTE)
        assert body.startswith(description.removesuffix(TRUNCATED_NOTE))
    else:
        assert description == body
    assert f"run `{run.id}`" in description and run.head_commit in description
    assert f"**{risk['level']}**" in description and "## Rollback plan" in description
    assert ("open request", SPONSOR) in api.actions and ("set status", FACTORY) in api.actions
    (status,) = api.statuses  # the gate's verdict, under the factory's token
    assert (status["commitId"], status["state"]) == (run.head_commit, "succeeded")
    assert status["context"] == {"genre": "codefactory", "name": "gate"}
    published = events(factory, run.id)
    assert published["forge-branch-pushed"]["commit"] == run.head_commit
    opened = published["pull-request-opened"]
    assert (opened["number"], opened["author"], opened["forge"]) == ("1", SPONSOR, "azure-devops")
    assert opened["url"].endswith(f"/{PROJECT}/_git/{REPOSITORY}/pullrequest/1")
    assert published["commit-status-set"]["state"] == "success"
    assert "forge-publish-failed" not in published

    # a hook claiming a vote Azure DevOps does not hold (anyone with the subscription's
    # password can send one) is refused: the run stays in review
    app = create_app(factory, build_dispatch(factory, workers=0))
    forged = hook("git.pullrequest.updated.approved.json", run.branch, run.head_commit,
                  pullRequestId=1, reviewers=[vote(REVIEWER)])  # fmt: skip
    receipt = deliver(app, forged).json()
    assert receipt["status"] == "refused" and receipt["state"] == "in_review", receipt
    assert f"the forge holds no approval by {REVIEWER} on this request" in receipt["reason"]
    assert ("read reviewers", FACTORY) in api.actions  # asked with the factory's token
    assert factory.store.require_run(run.id).state is RunState.IN_REVIEW

    # the votes are cast on Azure DevOps and come back: the sponsor's own 10 does not
    # count, Alice's does; a hook naming another commit than the packaged one is refused
    api.vote(1, SPONSOR)
    api.vote(1, REVIEWER)
    # Alice's vote is held, but Azure DevOps keeps votes across pushes here (no policy
    # resets them): it may be a vote on a decoy head the branch was pushed back from
    kept = hook("git.pullrequest.updated.approved.json", run.branch, run.head_commit,
                pullRequestId=1, reviewers=[vote(REVIEWER)])  # fmt: skip
    receipt = deliver(app, kept).json()
    assert receipt["status"] == "refused" and receipt["state"] == "in_review", receipt
    assert (
        "azure-devops keeps approvals across pushes on main (main is not a protected branch): "
        'turn on a blocking "Minimum number of reviewers" policy' in receipt["reason"]
    )
    assert "(`resetOnSourcePush`) so an approval cannot outlive the commit" in receipt["reason"]
    # requireVoteOnLastIteration blocks a merge but keeps the votes: still refused
    main = [scope(None, "refs/heads/main")]
    api.policies = [policy(MINIMUM_REVIEWERS, {"minimumApproverCount": 1,
                                               "requireVoteOnLastIteration": True,
                                               "scope": main})]  # fmt: skip
    last = hook("git.pullrequest.updated.approved.json", run.branch, run.head_commit,
                pullRequestId=1, reviewers=[vote(REVIEWER)])  # fmt: skip
    receipt = deliver(app, last).json()
    assert (
        receipt["status"] == "refused"
        and "keeps approvals across pushes on main:" in (receipt["reason"])
    )
    # the policy resets every vote on a new push: the vote is of the head it names
    api.policies = [policy(MINIMUM_REVIEWERS, {"minimumApproverCount": 1,
                                               "resetOnSourcePush": True,
                                               "scope": main})]  # fmt: skip
    stale = hook("git.pullrequest.updated.approved.json", run.branch, OTHER_COMMIT,
                 pullRequestId=1, reviewers=[vote(REVIEWER)])  # fmt: skip
    receipt = deliver(app, stale).json()
    assert (
        receipt["status"] == "refused" and "an approval binds to the reviewed" in receipt["reason"]
    )
    own = hook("git.pullrequest.updated.approved.json", run.branch, run.head_commit,
               pullRequestId=1, reviewers=[vote(SPONSOR)])  # fmt: skip
    receipt = deliver(app, own).json()
    assert receipt["status"] == "refused" and "priya.shah does not count" in receipt["reason"]
    votes = hook(
        "git.pullrequest.updated.approved.json",
        run.branch,
        run.head_commit,
        pullRequestId=1,
        reviewers=[vote(SPONSOR), vote("team", container=True), vote(REVIEWER)],
    )
    answer = deliver(app, votes)
    assert answer.status_code == 202, answer.text
    receipt = answer.json()
    assert receipt["status"] == "done" and receipt["run_id"] == run.id, receipt
    approved = factory.store.require_run(run.id)
    assert approved.state in (RunState.APPROVED, RunState.HANDED_OFF), approved.reason
    assert any(c.state is RunState.APPROVED for c in approved.history)
    reconciled = events(factory, run.id)
    assert reconciled["forge-approval-recorded"]["actor"] == "user:alice"
    assert reconciled["forge-approval-recorded"]["commit"] == run.head_commit
    refusals = [e for e in factory.store.audit_events(run.id) if e.name == "forge-approval-refused"]
    assert [e.actor for e in refusals] == [
        "user:alice", "user:alice", "user:alice", "forge:azure-devops", "user:priya.shah"
    ]  # fmt: skip
    assert refusals[-1].data["why"] == f"{SPONSOR} opened the request and cannot approve it"
    assert refusals[1].data["why"].startswith("azure-devops keeps approvals across pushes")
    assert reconciled["webhook-reconciled"]["outcome"] == "forge-approval-recorded"
    again = deliver(app, votes)  # the same event retried: answered once
    assert again.json()["duplicate"] is True

    # a second run merged on Azure DevOps with nobody's approval: audited, security alerted
    other = accept_ticket(factory, payload=ticket, repo=repo)
    assert other.state is RunState.IN_REVIEW, other.reason
    merged = hook(
        "git.pullrequest.merged.json",
        other.branch,
        other.head_commit,
        closedBy=vote("bob@acme-bank.example"),
    )
    receipt = deliver(app, merged).json()
    assert receipt["status"] == "done" and receipt["state"] == "in_review", receipt
    unapproved = events(factory, other.id)["merge-unapproved"]
    assert unapproved["actor"] == "azure-devops:bob@acme-bank.example"
    assert unapproved["merged_commit"] == other.head_commit
    assert unapproved["merge_commit"] == "eef717f69257a6333f1fb5a3b2c6ff8d4f2d2a1a"
    assert "recorded no approval" in unapproved["why"]
    (alert,) = [p for p in slack.posts if other.id in p["text"] and "merge-unapproved" in p["text"]]
    assert alert["channel"] == "U0SAM1234"
    assert (
        f"bob@acme-bank.example merged azure-devops request #{receipt_number(merged)}"
        in (alert["text"])
    )
    assert factory.store.require_run(other.id).state is RunState.IN_REVIEW


# -- the service hooks on their own: a run in review made by the factory's parts ----------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Factory, Any, Path]]:
    folder = tmp_path_factory.mktemp("azure-hooks")
    triggers = TriggerSettings(secrets={"azure-devops": SECRET})  # type: ignore[dict-item]
    factory = factory_for(folder, directory(folder), triggers=triggers)
    yield factory, create_app(factory, build_dispatch(factory, workers=0)), folder


def in_review(world: tuple[Factory, Any, Path], name: str) -> tuple[str, str]:
    factory, _, folder = world
    (folder / name).mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(signed_people, "REPOSITORY", REPO)
        run_id = run_in_review(factory, folder / name)
    return run_id, factory.store.require_run(run_id).head_commit


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        ({}, "no `Authorization: Basic` credentials"),
        (basic("wrong-password"), "does not match"),
        ({"Authorization": f"Bearer {SECRET}"}, "no `Authorization: Basic` credentials"),
        ({"Authorization": "Basic not-base64!"}, "no `Authorization: Basic` credentials"),
    ],
)
def test_a_hook_without_the_subscriptions_basic_password_is_refused(
    world: tuple[Factory, Any, Path], sent: dict[str, str], said: str
) -> None:
    factory, app, _ = world
    body = hook("git.pullrequest.updated.approved.json", "factory/r-x", OTHER_COMMIT)
    answer = deliver(app, body, {**sent, "Content-Type": "application/json"})
    assert answer.status_code == 401, answer.text
    assert said in answer.text
    queue = DeliveryQueue(factory.store.engine)
    assert queue.get("azure-devops", json.loads(body)["id"]) is None  # not stored


def test_an_approval_by_a_login_nobody_holds_is_unmatched_and_the_run_waits(
    world: tuple[Factory, Any, Path],
) -> None:
    factory, app, _ = world
    run_id, head = in_review(world, "unknown")
    branch = f"factory/{run_id}"
    body = hook(
        "git.pullrequest.updated.approved.json",
        branch,
        head,
        reviewers=[vote("mallory@elsewhere.example")],
    )
    receipt = deliver(app, body).json()
    assert receipt["status"] == "ignored" and receipt["run_id"] == run_id
    assert "login 'mallory@elsewhere.example' is not in the directory" in receipt["reason"]
    two = hook(
        "git.pullrequest.updated.approved.json",
        branch,
        head,
        reviewers=[vote("mallory@elsewhere.example"), vote("trent@elsewhere.example")],
    )
    receipt = deliver(app, two).json()
    assert receipt["status"] == "ignored"
    assert "approver ('mallory@elsewhere.example', 'trent@elsewhere.example')" in receipt["reason"]
    assert factory.store.require_run(run_id).state is RunState.IN_REVIEW
    unmatched = [e for e in factory.store.audit_events(run_id) if e.name == "forge-event-unmatched"]
    assert [e.data["forge"] for e in unmatched] == ["azure-devops", "azure-devops"]


def test_updates_without_an_approving_vote_and_merges_that_did_not_complete_move_nothing(
    world: tuple[Factory, Any, Path],
) -> None:
    factory, app, _ = world
    run_id, head = in_review(world, "no-vote")
    branch = f"factory/{run_id}"
    suggestions = hook(
        "git.pullrequest.updated.approved.json",
        branch,
        head,
        reviewers=[vote(REVIEWER, 5), vote("team", 10, container=True)],
    )
    receipt = deliver(app, suggestions).json()
    assert receipt["status"] == "ignored" and "is 10 (approved)" in receipt["reason"]
    attempt = hook("git.pullrequest.merged.json", branch, head, status="active")
    receipt = deliver(app, attempt).json()
    assert receipt["status"] == "ignored" and "merge attempt" in receipt["reason"]
    other = hook(
        "git.pullrequest.updated.approved.json", "feature/login", head, reviewers=[vote(REVIEWER)]
    )
    assert "not the factory's" in deliver(app, other).json()["reason"]
    assert factory.store.require_run(run_id).state is RunState.IN_REVIEW
    names = {e.name for e in factory.store.audit_events(run_id)}
    assert not names & {"forge-approval-recorded", "merge-unapproved", "merge-recorded"}


def test_a_vote_on_a_run_the_factory_published_no_request_for_is_refused(
    world: tuple[Factory, Any, Path],
) -> None:
    """This factory publishes to no forge (`forge.type=local`): a hook's vote cannot be
    confirmed, so it never counts."""
    factory, app, _ = world
    run_id, head = in_review(world, "unpublished")
    body = hook(
        "git.pullrequest.updated.approved.json",
        f"factory/{run_id}",
        head,
        reviewers=[vote(REVIEWER)],
    )
    receipt = deliver(app, body).json()
    assert receipt["status"] == "refused" and receipt["state"] == "in_review", receipt
    assert "the factory opened no request for this run on the forge" in receipt["reason"]
    assert factory.store.require_run(run_id).state is RunState.IN_REVIEW
