"""Bitbucket end to end through the factory, Cloud and Data Center: a packaged run pushed
over git smart HTTP (Cloud `/{workspace}/{repo}.git` with `x-token-auth`, Data Center
`/scm/{project}/{repo}.git` with a Bearer token), its draft pull request opened under the
sponsor's own token, its build status set under the factory's; then the webhooks coming
back, signed `X-Hub-Signature: sha256=…` on the real app's `POST /webhooks/bitbucket`: an
approval by another directory person approves the run (Cloud's 12-digit hash matched as a
prefix of the packaged commit), the approved commit's merge is recorded, and a merge nobody
approved is audited and alerts security through a Slack stand-in."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.integration.signed_people as signed_people
from codefactory.config import Settings
from codefactory.dispatch.service import build_dispatch
from codefactory.domain import RunState
from codefactory.factory import Factory, build_factory
from codefactory.review.forges.bitbucket import BitbucketHost
from codefactory.review.forges.settings import ForgeSettings
from codefactory.review.settings import NotifySettings, SlackSettings
from codefactory.runs.tickets import accept_ticket
from codefactory.triggers.settings import RepositoryBinding, TriggerSettings
from codefactory.web.app import create_app
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service
from tests.directory_helpers import person, standard_people, write_directory
from tests.fixtures.webhooks.signed import HERE
from tests.forge_standins.bitbucket import (
    APP_TOKEN,
    FACTORY,
    SPONSOR,
    SPONSOR_TOKEN,
    BitbucketCloudStandin,
    BitbucketDataCenterStandin,
    restriction,
)
from tests.forge_standins.git_http import GitHttpStandin, git
from tests.integration.signed_people import factory_for, run_in_review
from tests.integration.test_review_notifications import TOKEN, SlackStandIn
from tests.integration.test_webhooks import post

SECRET = "bb-webhook-secret-for-tests"
ALICE_CLOUD = "712020:4a1c3e5f-alice-0000-0000-000000000001"  # an Atlassian account_id
ALICE_DC = "alice"  # a Data Center user name
OTHER_COMMIT = "c4295bd74fb0f4fda03689c3df3f2803b658fd85"
CLOUD_REPO = "acme-bank/payments-api"
DC_REPO = "PAY/payments-api"


@dataclass
class Flavour:
    """One Bitbucket flavour: its repository name, how its webhooks look, who approves."""

    name: str
    repository: str
    alice: str

    @property
    def cloud(self) -> bool:
        return self.name == "cloud"

    def approval(
        self, branch: str, head: str, login: str, *, minute: int = 10
    ) -> tuple[str, bytes]:
        """(X-Event-Key, body) of an approval of the request on `branch` at `head`, dated at
        `minute` past 06:00 (another minute: another delivery)."""
        if self.cloud:
            doc = self._cloud("cloud.pullrequest-approved.json", branch, head)
            doc["approval"]["user"]["account_id"] = login
            doc["approval"]["date"] = f"2026-11-30T06:{minute:02d}:00.000000+00:00"
            return "pullrequest:approved", json.dumps(doc).encode()
        doc = self._dc("dc.pr-reviewer-approved.json", branch, head)
        doc["participant"]["user"]["name"] = login
        doc["date"] = f"2026-11-30T06:{minute:02d}:00+0000"
        return "pr:reviewer:approved", json.dumps(doc).encode()

    def merge(self, branch: str, head: str, login: str) -> tuple[str, bytes]:
        if self.cloud:
            doc = self._cloud("cloud.pullrequest-fulfilled.json", branch, head)
            doc["pullrequest"]["closed_by"]["account_id"] = login
            return "pullrequest:fulfilled", json.dumps(doc).encode()
        doc = self._dc("dc.pr-merged.json", branch, head)
        doc["actor"]["name"] = login
        return "pr:merged", json.dumps(doc).encode()

    def changes(self, branch: str, head: str, login: str) -> tuple[str, bytes]:
        if self.cloud:
            doc = self._cloud("cloud.pullrequest-approved.json", branch, head)
            doc["changes_request"] = doc.pop("approval")
            doc["changes_request"]["user"]["account_id"] = login
            return "pullrequest:changes_request_created", json.dumps(doc).encode()
        doc = self._dc("dc.pr-reviewer-approved.json", branch, head)
        doc["participant"]["user"]["name"] = login
        doc["participant"]["status"] = "NEEDS_WORK"
        return "pr:reviewer:needs_work", json.dumps(doc).encode()

    def _cloud(self, name: str, branch: str, head: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((HERE / "bitbucket" / name).read_bytes())
        doc["repository"]["full_name"] = self.repository
        doc["pullrequest"]["id"] = 1
        doc["pullrequest"]["source"]["branch"]["name"] = branch
        doc["pullrequest"]["source"]["commit"]["hash"] = head[:12]  # Cloud's abbreviation
        return doc

    def _dc(self, name: str, branch: str, head: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((HERE / "bitbucket" / name).read_bytes())
        pull = doc["pullRequest"]
        pull["id"] = 1
        pull["fromRef"].update(id=f"refs/heads/{branch}", displayId=branch, latestCommit=head)
        project, slug = self.repository.split("/")
        for side in ("fromRef", "toRef"):
            pull[side]["repository"]["project"]["key"] = project
            pull[side]["repository"]["slug"] = slug
        return doc

    def headers(self, key: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        sent = {
            "X-Hub-Signature": signature,
            "X-Event-Key": key,
            "Content-Type": "application/json",
        }
        if self.cloud:
            sent["X-Request-UUID"] = str(uuid.uuid4())
            sent["X-Hook-UUID"] = "{8f5c1a2e-0d4b-4c6a-9e3f-1b2a3c4d5e6f}"
        else:
            sent["X-Request-Id"] = str(uuid.uuid4())
        return sent


CLOUD = Flavour("cloud", CLOUD_REPO, ALICE_CLOUD)
DATA_CENTER = Flavour("data-center", DC_REPO, ALICE_DC)


def deliver(app: Any, flavour: Flavour, sent: tuple[str, bytes]) -> httpx.Response:
    key, body = sent
    return post(app, "/webhooks/bitbucket", body, flavour.headers(key, body))


def directory(folder: Path) -> Path:
    people = standard_people()
    people["priya.shah"]["identities"]["bitbucket"] = [SPONSOR]
    people["alice"] = person("Alice", roles=["reviewer"], bitbucket=[ALICE_CLOUD, ALICE_DC])
    people["sam"] = person("Sam", roles=["security"], slack="U0SAM1234")
    return write_directory(folder / "directory.toml", people)


def events(factory: Factory, run_id: str) -> dict[str, dict[str, Any]]:
    return {e.name: {**e.data, "actor": e.actor} for e in factory.store.audit_events(run_id)}


def forge_settings(flavour: Flavour, base_url: str, git_url: str, **extra: Any) -> ForgeSettings:
    if flavour.cloud:
        return ForgeSettings(
            type="bitbucket", base_url=base_url, api_url=f"{base_url}/2.0", git_url=git_url, **extra
        )
    return ForgeSettings(
        type="bitbucket",
        bitbucket_flavour="data-center",
        base_url=base_url,
        git_url=git_url,
        **extra,
    )


@pytest.fixture(params=[CLOUD, DATA_CENTER], ids=["cloud", "data-center"])
def flavour(request: pytest.FixtureRequest) -> Flavour:
    found: Flavour = request.param
    return found


@pytest.mark.usefixtures("bwrap_available")
def test_a_run_is_published_to_bitbucket_approved_merged_and_an_unapproved_merge_alerts(
    tmp_path: Path, uv_cache: Path, flavour: Flavour, monkeypatch: pytest.MonkeyPatch
) -> None:
    api: BitbucketCloudStandin | BitbucketDataCenterStandin = (
        BitbucketCloudStandin() if flavour.cloud else BitbucketDataCenterStandin()
    )
    api.start()
    push_header = BitbucketHost(
        forge_settings(flavour, "https://x.example", ""), app_token=APP_TOKEN
    ).push_header()
    git_host = GitHttpStandin(tmp_path / "bitbucket-git", authorization=push_header)
    slack = SlackStandIn()
    try:
        _end_to_end(tmp_path, uv_cache, flavour, monkeypatch, api, git_host, slack)
    finally:
        slack.stop()
        git_host.stop()
        api.stop()


def _end_to_end(
    tmp_path: Path,
    uv_cache: Path,
    flavour: Flavour,
    monkeypatch: pytest.MonkeyPatch,
    api: BitbucketCloudStandin | BitbucketDataCenterStandin,
    git_host: GitHttpStandin,
    slack: SlackStandIn,
) -> None:
    served = flavour.repository if flavour.cloud else f"scm/{flavour.repository}"
    repo = sample_service(tmp_path / "sample-service")
    git_host.create(served, seed=repo)
    api.git_head = lambda branch: git_host.head(served, branch)  # the forge reads the push
    monkeypatch.setenv("CODEFACTORY_IDENTITY__DIRECTORY_FILE", str(directory(tmp_path / "people")))
    token_file = tmp_path / "bitbucket-app-token"
    token_file.write_text(APP_TOKEN + "\n")
    slack_token = tmp_path / "slack-token"
    slack_token.write_text(TOKEN + "\n")
    settings = Settings(
        data_dir=data_dir_sharing_cache(tmp_path / "data", uv_cache),
        triggers=TriggerSettings(
            secrets={"bitbucket": SECRET},  # type: ignore[dict-item]
            repositories={flavour.repository: RepositoryBinding(path=repo)},
        ),
        forge=forge_settings(
            flavour,
            api.base_url,
            git_host.url,
            token_file=token_file,
            user_tokens={"priya.shah": SPONSOR_TOKEN},
        ),
        notify=NotifySettings(slack=SlackSettings(base_url=slack.base_url, token_file=slack_token)),
    )
    factory = build_factory(settings)
    ticket = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()
    run = accept_ticket(factory, payload=ticket, repo=repo)
    assert run.state is RunState.IN_REVIEW, run.reason
    assert run.repository == flavour.repository and run.sponsor == "priya.shah"

    # pushed at the signed commit, the app token only in git's environment
    assert git_host.head(served, run.branch) == run.head_commit
    assert git_host.argv_leaks == []
    assert "-----BEGIN SSH SIGNATURE-----" in git(
        git_host.root / f"{served}.git", "cat-file", "commit", run.head_commit
    )
    (pull,) = api.pulls  # a draft under the sponsor's own token, with the package
    summary = api.summary(pull)
    assert (summary["author"], summary["draft"]) == (SPONSOR, True)
    assert (summary["source"], summary["target"]) == (run.branch, "main")
    risk = json.loads((Path(run.package_dir) / "risk.json").read_text())
    assert f"**{risk['level']}**" in summary["description"]
    assert (
        "## Rollback plan" in summary["description"] and run.head_commit in summary["description"]
    )
    assert ("open request", SPONSOR) in api.actions and ("set status", FACTORY) in api.actions
    statuses = list(api.statuses.values()) if isinstance(api.statuses, dict) else api.statuses
    (status,) = statuses  # the gate's verdict, under the factory's token
    assert (status["commit"], status["state"], status["set_by"]) == (
        run.head_commit,
        "SUCCESSFUL",
        FACTORY,
    )
    published = events(factory, run.id)
    assert published["forge-branch-pushed"]["commit"] == run.head_commit
    opened = published["pull-request-opened"]
    assert (opened["number"], opened["author"], opened["forge"]) == ("1", SPONSOR, "bitbucket")
    assert published["commit-status-set"]["state"] == "success"
    assert "forge-publish-failed" not in published

    # a webhook claiming an approval Bitbucket does not hold (anyone with the webhook's
    # secret can send one) is refused: the run stays in review
    app = create_app(factory, build_dispatch(factory, workers=0))
    claimed = flavour.approval(run.branch, run.head_commit, flavour.alice, minute=5)
    forged = deliver(app, flavour, claimed)
    receipt = forged.json()
    assert receipt["status"] == "refused" and receipt["state"] == "in_review", receipt
    why = f"the forge holds no approval by {flavour.alice} on this request"
    assert why in receipt["reason"]
    assert ("read request", FACTORY) in api.actions  # asked with the factory's token
    assert factory.store.require_run(run.id).state is RunState.IN_REVIEW

    # Alice approves on Bitbucket: the run is approved, its merge is the factory's; a
    # webhook naming another commit than the packaged one is refused by the desk
    if isinstance(api, BitbucketCloudStandin):
        api.approve(1, "alice", account_id=flavour.alice)
    else:
        api.approve(1, flavour.alice)
    # Bitbucket holds it, but keeps approvals across pushes here (both flavours' default):
    # it may be an approval of a decoy head the branch was pushed back from
    kept = deliver(app, flavour, flavour.approval(run.branch, run.head_commit, flavour.alice,
                                                  minute=6))  # fmt: skip
    assert kept.json()["status"] == "refused", kept.json()
    setting = (
        '(Cloud `reset_pullrequest_approvals_on_change`) or "Unapprove automatically on new '
        'changes" (Data Center `unapproveOnUpdate`) so an approval cannot outlive the commit'
    )
    assert "bitbucket keeps approvals across pushes on main" in kept.json()["reason"]
    assert setting in kept.json()["reason"]
    assert factory.store.require_run(run.id).state is RunState.IN_REVIEW
    # the repository drops approvals on a new push: the approval is of the head it names
    if isinstance(api, BitbucketCloudStandin):
        api.restrictions = [restriction("reset_pullrequest_approvals_on_change")]
    else:
        api.pull_request_settings["unapproveOnUpdate"] = True
    stale = deliver(app, flavour, flavour.approval(run.branch, OTHER_COMMIT, flavour.alice))
    assert stale.json()["status"] == "refused", stale.json()
    assert "an approval binds to the reviewed commit" in stale.json()["reason"]
    answer = deliver(app, flavour, flavour.approval(run.branch, run.head_commit, flavour.alice))
    assert answer.status_code == 202, answer.text
    receipt = answer.json()
    assert receipt["status"] == "done" and receipt["run_id"] == run.id, receipt
    approved = factory.store.require_run(run.id)
    assert any(c.state is RunState.APPROVED for c in approved.history), approved.reason
    recorded = events(factory, run.id)["forge-approval-recorded"]
    assert recorded["actor"] == "user:alice" and recorded["commit"] == run.head_commit
    merged = deliver(app, flavour, flavour.merge(run.branch, run.head_commit, flavour.alice))
    assert merged.json()["status"] == "done"
    assert events(factory, run.id)["merge-recorded"]["merged_commit"] == run.head_commit

    # a second run merged with nobody's approval: audited, security alerted
    other = accept_ticket(factory, payload=ticket, repo=repo)
    assert other.state is RunState.IN_REVIEW, other.reason
    receipt = deliver(app, flavour, flavour.merge(other.branch, other.head_commit, "bob")).json()
    assert receipt["status"] == "done" and receipt["state"] == "in_review", receipt
    unapproved = events(factory, other.id)["merge-unapproved"]
    assert unapproved["actor"] == "bitbucket:bob" and "recorded no approval" in unapproved["why"]
    assert unapproved["merged_commit"] == other.head_commit
    texts = [p for p in slack.posts if other.id in p["text"] and "merge-unapproved" in p["text"]]
    (alert,) = texts
    assert alert["channel"] == "U0SAM1234" and "bob merged bitbucket request #1" in alert["text"]
    assert factory.store.require_run(other.id).state is RunState.IN_REVIEW


# -- the webhooks on their own: a run in review made by the factory's parts ----------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Factory, Any, Path]]:
    folder = tmp_path_factory.mktemp("bitbucket-hooks")
    triggers = TriggerSettings(secrets={"bitbucket": SECRET})  # type: ignore[dict-item]
    factory = factory_for(folder, directory(folder), triggers=triggers)
    yield factory, create_app(factory, build_dispatch(factory, workers=0)), folder


def in_review(world: tuple[Factory, Any, Path], flavour: Flavour, name: str) -> tuple[str, str]:
    factory, _, folder = world
    (folder / f"{flavour.name}-{name}").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(signed_people, "REPOSITORY", flavour.repository)
        run_id = run_in_review(factory, folder / f"{flavour.name}-{name}")
    return run_id, factory.store.require_run(run_id).head_commit


def test_a_delivery_signed_with_another_secret_or_without_a_request_id_is_refused(
    world: tuple[Factory, Any, Path], flavour: Flavour
) -> None:
    _, app, _ = world
    key, body = flavour.approval("factory/r-x", OTHER_COMMIT, flavour.alice)
    forged = post(app, "/webhooks/bitbucket", body, flavour.headers(key, body, "guessed"))
    assert forged.status_code == 401 and "`X-Hub-Signature` does not match" in forged.text
    unsigned = {k: v for k, v in flavour.headers(key, body).items() if k != "X-Hub-Signature"}
    assert post(app, "/webhooks/bitbucket", body, unsigned).status_code == 401
    anonymous = {
        k: v
        for k, v in flavour.headers(key, body).items()
        if k not in ("X-Request-UUID", "X-Request-Id")
    }
    answer = post(app, "/webhooks/bitbucket", body, anonymous)
    assert answer.status_code == 400 and "X-Request-UUID/-Id" in answer.text


def test_an_approval_of_an_unpublished_run_is_refused_and_changes_asked_are_recorded(
    world: tuple[Factory, Any, Path], flavour: Flavour
) -> None:
    """This factory publishes to no forge (`forge.type=local`): an approval cannot be
    confirmed, so it never counts; changes asked for are recorded all the same."""
    factory, app, _ = world
    run_id, head = in_review(world, flavour, "unpublished")
    branch = f"factory/{run_id}"
    receipt = deliver(app, flavour, flavour.approval(branch, head, flavour.alice)).json()
    assert receipt["status"] == "refused" and receipt["state"] == "in_review", receipt
    assert "the factory opened no request for this run on the forge" in receipt["reason"]
    receipt = deliver(app, flavour, flavour.changes(branch, OTHER_COMMIT, flavour.alice)).json()
    assert receipt["status"] == "done", receipt
    asked = events(factory, run_id)["forge-changes-requested"]
    assert asked["actor"] == f"bitbucket:{flavour.alice}" and asked["person"] == "alice"
    assert asked["repository"] == flavour.repository
    assert asked.get("abbreviated_commit", False) is flavour.cloud  # Cloud's 12 digits, kept
    assert factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_unknown_logins_other_branches_and_other_events_move_nothing(
    world: tuple[Factory, Any, Path], flavour: Flavour
) -> None:
    factory, app, _ = world
    run_id, head = in_review(world, flavour, "unknown")
    branch = f"factory/{run_id}"
    receipt = deliver(app, flavour, flavour.approval(branch, head, "mallory")).json()
    assert receipt["status"] == "ignored"
    assert "the bitbucket login 'mallory' is not in the directory" in receipt["reason"]
    receipt = deliver(app, flavour, flavour.approval("feature/login", head, flavour.alice)).json()
    assert receipt["status"] == "ignored" and "not the factory's" in receipt["reason"]
    key = "repo:refs_changed" if not flavour.cloud else "repo:push"
    receipt = deliver(app, flavour, (key, b'{"push": {}}')).json()
    assert receipt["status"] == "ignored" and "start no run" in receipt["reason"]
    assert factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_a_cloud_hash_too_short_to_name_a_commit_is_malformed(
    world: tuple[Factory, Any, Path],
) -> None:
    _, app, _ = world
    key, body = CLOUD.approval("factory/r-short", OTHER_COMMIT, ALICE_CLOUD)
    doc = json.loads(body)
    doc["pullrequest"]["source"]["commit"]["hash"] = OTHER_COMMIT[:7]
    body = json.dumps(doc).encode()
    answer = post(app, "/webhooks/bitbucket", body, CLOUD.headers(key, body))
    assert answer.status_code == 400 and "is no hash" in answer.text
