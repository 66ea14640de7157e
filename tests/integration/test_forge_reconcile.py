"""Reconciliation: the forge's review and merge events, posted signed to the real app's
webhook endpoints (in-process, real SQLite, the real review desk), move the run or become
named audit events; an unapproved merge alerts the security role through a local Slack
stand-in (`chat.postMessage`, Slack's answer shapes).

The factory publishes to the GitHub stand-in (`tests/forge_standins/github.py`; a second,
smaller world to the GitLab one), so every approval is confirmed with the forge through the
production adapter and the factory's app token. A run is "published" cheaply: its pull
request is put on the stand-in (head `factory/<run>`, the run's head commit, opened by the
sponsor's login) and the factory's `pull-request-opened` event recorded; the real
publishing hook is tested end to end in test_forge_github.py."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import text

import tests.integration.signed_people as signed_people
from codefactory.audit.events import PullRequestOpened
from codefactory.dispatch.service import build_dispatch
from codefactory.domain import RunState
from codefactory.factory import Factory
from codefactory.review.forge_events import ForgeEvent, read_forge_event
from codefactory.review.forges.settings import ForgeSettings
from codefactory.review.settings import NotifySettings, SlackSettings
from codefactory.triggers.port import Delivery
from codefactory.triggers.settings import RepositoryBinding, TriggerSettings
from codefactory.web.app import create_app
from tests.directory_helpers import os_account, person, write_directory
from tests.fixtures.webhooks.signed import HERE, SECRETS, headers
from tests.forge_standins.git_http import GitHttpStandin
from tests.forge_standins.github import GitHubStandin, PullRequest
from tests.forge_standins.gitlab import GitLabStandin, MergeRequest
from tests.forge_standins.loopback import Answer, Seen
from tests.integration.signed_people import factory_for, run_in_review
from tests.integration.test_review_notifications import TOKEN, SlackStandIn
from tests.integration.test_webhooks import post

GITHUB_REPO = "Codertocat/Hello-World"  # the recorded GitHub payloads' repository
GITLAB_REPO = "gitlabhq/gitlab-test"  # the GitLab docs' example project
OTHER_COMMIT = "c4295bd74fb0f4fda03689c3df3f2803b658fd85"
APP_TOKEN = "forge-app-token-for-reconcile-tests"
SPONSOR_LOGIN = {"github": "priya-gh", "gitlab": "priya-gl"}


@dataclass
class World:
    """A factory publishing to `forge` (`github`, `gitlab`, or `local`), its app and the
    forge's stand-in."""

    factory: Factory
    app: Any
    slack: SlackStandIn
    tmp_path: Path
    forge: str
    repository: str
    github: GitHubStandin | None = None
    gitlab: GitLabStandin | None = None
    runs: int = 0
    numbers: dict[str, int] = field(default_factory=dict)

    def run(self, repository: str = "", *, publish: bool = True) -> str:
        """A fresh run in review on `repository` (a canonical id the forge names; the
        world's by default), published on the forge unless `publish` is false."""
        self.runs += 1
        folder = self.tmp_path / f"run-{self.runs}"
        folder.mkdir()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(signed_people, "REPOSITORY", repository or self.repository)
            run_id = run_in_review(self.factory, folder)
        if publish:
            self.publish(run_id)
        return run_id

    def publish(self, run_id: str, *, head_repo: str = "") -> int:
        """Open `run_id`'s request on the stand-in as the factory would (head
        `factory/<run>` at the run's head commit, into `main`, by the sponsor's login) and
        record the factory's `pull-request-opened`; `head_repo` names a fork the head
        branch lives in. Returns the request's number."""
        run = self.factory.store.require_run(run_id)
        name = run.repository
        author = SPONSOR_LOGIN.get(self.forge, "priya")
        if self.gitlab is not None:
            number = len(self.gitlab.merge_requests) + 1
            self.gitlab.merge_requests.append(
                MergeRequest(
                    iid=number, project=name, title="fix lint", description="",
                    source_branch=run.branch, target_branch="main", opened_by=author,
                    sha=run.head_commit, source_project_id=77 if head_repo else 42,
                )
            )  # fmt: skip
            if head_repo:
                self.gitlab.forks[77] = head_repo
            url = f"{self.gitlab.url}/{name}/-/merge_requests/{number}"
        else:
            assert self.github is not None, "a local forge opens no request"
            owner, _, repo = name.partition("/")
            number = len(self.github.pulls) + 1
            self.github.pulls.append(
                PullRequest(
                    number=number, owner=owner, repo=repo, title="fix lint", body="",
                    head=run.branch, base="main", draft=True, opened_by=author,
                    sha=run.head_commit, head_repo=head_repo,
                )
            )  # fmt: skip
            url = f"{self.github.url}/{name}/pull/{number}"
        self.opened(run_id, number, url=url, author=author)
        return number

    def opened(self, run_id: str, number: int, *, url: str = "", author: str = "") -> None:
        """The factory's `pull-request-opened` event of `run_id` naming request `number`."""
        run = self.factory.store.require_run(run_id)
        self.numbers[run_id] = number
        self.factory.store.append(PullRequestOpened(
            actor="factory", run_id=run_id, forge=self.forge,
            repository=run.repository, number=str(number), url=url or f"https://forge/{number}",
            author=author, sponsor=run.sponsor, commit=run.head_commit, branch=run.branch,
        ))  # fmt: skip

    def number(self, run_id: str) -> int:
        return self.numbers[run_id]

    def on_forge(self, run_id: str, login: str, state: str = "APPROVED") -> int:
        """Record `login`'s review (`state`) of `run_id`'s request on the forge; the review's
        id (GitHub), 0 on GitLab (an approval there has no id)."""
        if self.gitlab is not None:
            mr = next(m for m in self.gitlab.merge_requests if m.iid == self.number(run_id))
            mr.approved_by.append(login)
            return 0
        assert self.github is not None
        return self.github.review(self.number(run_id), login, state)

    def head(self, run_id: str) -> str:
        return self.factory.store.require_run(run_id).head_commit

    def events(self, run_id: str = "", name: str = "") -> list[Any]:
        found = self.factory.audit.events(run_id) if run_id else self.factory.audit.events()
        return [e for e in found if not name or e.name == name]


def make_world(tmp_path: Path, forge: str) -> tuple[World, list[Any]]:
    """A world publishing to `forge`; also what must be stopped after it."""
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
    stop: list[Any] = [slack]
    token = tmp_path / "slack-token"
    token.write_text(TOKEN + "\n")
    app_token = tmp_path / "forge-app-token"
    app_token.write_text(APP_TOKEN + "\n")
    repository = GITLAB_REPO if forge == "gitlab" else GITHUB_REPO
    github = gitlab = None
    settings: dict[str, object] = {}
    if forge != "local":
        git_host = GitHttpStandin(tmp_path / "forge-git", authorization="Basic unused")
        stop.append(git_host)
        for name in (GITHUB_REPO, GITLAB_REPO, "acme/payments"):
            git_host.create(name)
        api: GitHubStandin | GitLabStandin
        if forge == "gitlab":
            api = gitlab = GitLabStandin(git=git_host, app_token=APP_TOKEN, user_tokens={})
            # GitLab ties no approval to a commit: one counts only where a push drops them
            gitlab.protect(GITLAB_REPO, reset_on_push=True)
        else:
            api = github = GitHubStandin(git=git_host, app_token=APP_TOKEN, user_tokens={})
        stop.append(api)
        settings["forge"] = ForgeSettings.model_validate(
            {"type": forge, "base_url": api.url, "git_url": git_host.url,
             "token_file": app_token, "max_retries": 0}
        )  # fmt: skip
    triggers = TriggerSettings(
        secrets=dict(SECRETS),  # type: ignore[arg-type]
        repositories={GITHUB_REPO: RepositoryBinding(path=tmp_path)},
    )
    factory = factory_for(
        tmp_path,
        directory,
        triggers=triggers,
        notify=NotifySettings(slack=SlackSettings(base_url=slack.base_url, token_file=token)),
        **settings,
    )
    dispatch = build_dispatch(factory, workers=0)
    world = World(factory=factory, app=create_app(factory, dispatch), slack=slack,
                  tmp_path=tmp_path, forge=forge, repository=repository, github=github,
                  gitlab=gitlab)  # fmt: skip
    return world, stop


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made, stop = make_world(tmp_path_factory.mktemp("forge-reconcile"), "github")
    try:
        yield made
    finally:
        for each in reversed(stop):
            each.stop()


@pytest.fixture(scope="module")
def gitlab_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made, stop = make_world(tmp_path_factory.mktemp("forge-reconcile-gitlab"), "gitlab")
    try:
        yield made
    finally:
        for each in reversed(stop):
            each.stop()


def review(run_id: str, commit: str, login: str, *, state: str = "approved",
           branch: str = "", review_id: int = 0, number: int = 0) -> bytes:  # fmt: skip
    """The recorded `pull_request_review.submitted` delivery about `run_id`'s request
    (`number`; the recording's 2 by default)."""
    doc = json.loads((HERE / "github" / "pull-request-review.submitted.approved.json").read_bytes())
    doc["review"].update(state=state, commit_id=commit, id=review_id or abs(hash(run_id + login)))
    doc["review"]["user"]["login"] = login
    doc["pull_request"]["head"].update(ref=branch or f"factory/{run_id}", sha=commit)
    if number:
        doc["pull_request"]["number"] = number
    return json.dumps(doc).encode()


def merged(run_id: str, head: str, login: str = "mona-gh", *, branch: str = "",
           number: int = 0) -> bytes:  # fmt: skip
    """The recorded `pull_request.closed` delivery of a merged request for `run_id`."""
    doc = json.loads((HERE / "github" / "pull-request.closed.merged.json").read_bytes())
    doc["pull_request"]["head"].update(ref=branch or f"factory/{run_id}", sha=head)
    doc["pull_request"]["merged_by"]["login"] = login
    if number:
        doc["number"] = doc["pull_request"]["number"] = number
    return json.dumps(doc).encode()


def gitlab_hook(name: str, run_id: str, commit: str, user: str = "root", *,
                iid: int = 0) -> bytes:  # fmt: skip
    doc = json.loads((HERE / "gitlab" / name).read_bytes())
    doc["object_attributes"]["source_branch"] = f"factory/{run_id}"
    doc["object_attributes"]["last_commit"]["id"] = commit
    doc["user"]["username"] = user
    if iid:
        doc["object_attributes"]["iid"] = iid
    return json.dumps(doc).encode()


def deliver(world: World, source: str, body: bytes, event: str) -> dict[str, Any]:
    answer = post(world.app, f"/webhooks/{source}", body, headers(source, body, event=event))
    assert answer.status_code == 202, answer.text
    receipt: dict[str, Any] = answer.json()
    return receipt


def approve(world: World, run_id: str, login: str, *, commit: str = "") -> dict[str, Any]:
    """`login` approves `run_id`'s request on the forge, and the forge's webhook says so."""
    review_id = world.on_forge(run_id, login)
    body = review(run_id, commit or world.head(run_id), login, review_id=review_id,
                  number=world.number(run_id))  # fmt: skip
    return deliver(world, "github", body, "pull_request_review")


# -- approvals the forge confirms ----------------------------------------------------------


def test_an_approval_by_another_directory_person_moves_the_run(world: World) -> None:
    run_id = world.run()
    receipt = approve(world, run_id, "jordan-gh")
    assert (receipt["status"], receipt["run_id"]) == ("done", run_id), receipt
    run = world.factory.store.require_run(run_id)
    assert run.state is not RunState.IN_REVIEW and receipt["state"] == run.state.value
    assert any(c.state is RunState.APPROVED for c in run.history)
    (recorded,) = world.events(run_id, "forge-approval-recorded")
    assert recorded.actor == "user:jordan.lee" and recorded.data["commit"] == world.head(run_id)
    assert recorded.data["request"] == str(world.number(run_id))
    (reconciled,) = world.events(run_id, "webhook-reconciled")
    assert reconciled.data["outcome"] == "forge-approval-recorded"
    assert not world.events(run_id, "trigger-received")  # never a trigger of a new run
    assert world.github is not None
    reads = world.github.calls("GET", f"/pulls/{world.number(run_id)}")
    assert reads and {r.who for r in reads} == {"app"}  # asked with the factory's token


def test_the_sponsors_own_approval_is_refused_and_the_run_stays_in_review(world: World) -> None:
    run_id = world.run()
    receipt = approve(world, run_id, "priya-gh")  # the request is opened under her account
    why = refused_because(world, run_id, receipt)
    assert why == "priya-gh opened the request and cannot approve it"
    assert "the github approval by priya.shah does not count" in receipt["reason"]


def test_an_approval_by_someone_without_the_reviewer_role_is_refused(world: World) -> None:
    run_id = world.run()
    receipt = approve(world, run_id, "dana-gh")
    assert receipt["status"] == "refused"
    (refused,) = world.events(run_id, "forge-approval-refused")
    assert "does not count" not in refused.data["reason"]  # the forge confirmed; the desk refused
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW


# -- what the red team found: approvals only a webhook claims -------------------------------


def refused_because(world: World, run_id: str, receipt: dict[str, Any]) -> str:
    """The reason of the one `forge-approval-refused` of `run_id`, checked to be the
    receipt's, with the run still in review."""
    assert receipt["status"] == "refused" and receipt["state"] == "in_review", receipt
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW
    assert not world.events(run_id, "forge-approval-recorded")
    (refused,) = world.events(run_id, "forge-approval-refused")
    assert refused.data["why"] in receipt["reason"]
    return str(refused.data["why"])


def test_an_approval_forged_by_a_webhook_with_no_review_on_the_forge_is_refused(
    world: World,
) -> None:
    run_id = world.run()
    forged = review(run_id, world.head(run_id), "jordan-gh", number=world.number(run_id),
                    review_id=987654)  # fmt: skip
    why = refused_because(world, run_id, deliver(world, "github", forged, "pull_request_review"))
    assert why.startswith("the forge could not confirm it") and "404" in why


def test_an_approval_naming_someone_elses_review_is_refused(world: World) -> None:
    """The webhook names a real approval on the forge, by someone else (the sender cannot
    choose who approved)."""
    run_id = world.run()
    mona = world.on_forge(run_id, "mona-gh")
    forged = review(run_id, world.head(run_id), "jordan-gh", number=world.number(run_id),
                    review_id=mona)  # fmt: skip
    why = refused_because(world, run_id, deliver(world, "github", forged, "pull_request_review"))
    assert why == "the forge holds no approval by jordan-gh on this request"


def test_an_approval_withdrawn_on_the_forge_is_refused(world: World) -> None:
    """A replayed webhook of an approval the reviewer has since replaced by changes asked."""
    run_id = world.run()
    approved = world.on_forge(run_id, "jordan-gh")
    world.on_forge(run_id, "jordan-gh", "CHANGES_REQUESTED")
    old = review(run_id, world.head(run_id), "jordan-gh", number=world.number(run_id),
                 review_id=approved)  # fmt: skip
    why = refused_because(world, run_id, deliver(world, "github", old, "pull_request_review"))
    assert why == "the forge holds no approval by jordan-gh on this request"


def test_an_approval_on_a_request_the_factory_did_not_open_is_refused(world: World) -> None:
    run_id = world.run()
    ours = world.number(run_id)
    assert world.github is not None
    stranger = dataclasses.replace(
        world.github.pulls[ours - 1], number=len(world.github.pulls) + 1, opened_by="mallory-gh"
    )
    world.github.pulls.append(stranger)  # the same branch, opened by someone else
    review_id = world.github.review(stranger.number, "jordan-gh")
    body = review(run_id, world.head(run_id), "jordan-gh", number=stranger.number,
                  review_id=review_id)  # fmt: skip
    why = refused_because(world, run_id, deliver(world, "github", body, "pull_request_review"))
    assert why == f"request #{stranger.number} is not the one the factory opened (#{ours})"


def test_an_approval_on_a_run_the_factory_never_published_is_refused(world: World) -> None:
    run_id = world.run(publish=False)
    body = review(run_id, world.head(run_id), "jordan-gh")
    why = refused_because(world, run_id, deliver(world, "github", body, "pull_request_review"))
    assert why == "the factory opened no request for this run on the forge"


def test_an_approval_of_a_request_from_a_fork_is_refused(world: World) -> None:
    run_id = world.run(publish=False)
    world.publish(run_id, head_repo="mallory/Hello-World")
    why = refused_because(world, run_id, approve(world, run_id, "jordan-gh"))
    assert why == (f"the request comes from a fork (mallory/Hello-World), not from {GITHUB_REPO}")


def test_an_approval_of_another_commit_than_the_packaged_one_is_refused(world: World) -> None:
    run_id = world.run()
    assert world.github is not None
    review_id = world.github.review(world.number(run_id), "jordan-gh", commit=OTHER_COMMIT)
    body = review(run_id, world.head(run_id), "jordan-gh", number=world.number(run_id),
                  review_id=review_id)  # fmt: skip
    why = refused_because(world, run_id, deliver(world, "github", body, "pull_request_review"))
    assert f"the approval is for commit {OTHER_COMMIT}" in why


def test_a_forge_that_cannot_answer_refuses_the_approval_until_asked_again(world: World) -> None:
    run_id = world.run()
    assert world.github is not None
    world.github.fail_next(401)
    why = refused_because(world, run_id, approve(world, run_id, "jordan-gh"))
    assert why.startswith("the forge could not confirm it") and "approve again" in why


def test_a_local_forge_factory_refuses_every_forge_approval(tmp_path: Path) -> None:
    local, stop = make_world(tmp_path, "local")
    try:
        run_id = local.run(publish=False)
        local.opened(run_id, 2)  # even a request it claims to have opened
        body = review(run_id, local.head(run_id), "jordan-gh", number=2)
        why = refused_because(local, run_id, deliver(local, "github", body, "pull_request_review"))
        assert why == "this factory publishes to no forge, so it cannot confirm the approval"
    finally:
        for each in reversed(stop):
            each.stop()


# -- events that match nothing ---------------------------------------------------------------


def test_an_approval_by_an_unknown_login_is_unmatched(world: World) -> None:
    run_id = world.run()
    receipt = approve(world, run_id, "octo-stranger")
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
    receipt = approve(world, run_id, "jordan-gh")
    assert receipt["status"] == "ignored"
    assert "the run's repository on github is acme/payments" in receipt["reason"]
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_reviews_of_other_branches_or_without_a_verdict_start_nothing(world: World) -> None:
    before = len(world.factory.store.search_runs(limit=1000))
    other = review("x", OTHER_COMMIT, "jordan-gh", branch="feature/login")
    receipt = deliver(world, "github", other, "pull_request_review")
    assert receipt["status"] == "ignored" and "not the factory's" in receipt["reason"]
    run_id = world.run()
    comment = review(run_id, world.head(run_id), "jordan-gh", state="commented",
                     number=world.number(run_id))  # fmt: skip
    receipt = deliver(world, "github", comment, "pull_request_review")
    assert receipt["status"] == "ignored" and "neither approves" in receipt["reason"]
    assert len(world.factory.store.search_runs(limit=1000)) == before + 1  # only world.run's
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_a_repeated_approval_delivery_is_answered_once(world: World) -> None:
    run_id = world.run()
    body = review(run_id, world.head(run_id), "dana-gh", number=world.number(run_id),
                  review_id=world.on_forge(run_id, "dana-gh"))  # fmt: skip
    first = deliver(world, "github", body, "pull_request_review")
    again = deliver(world, "github", body, "pull_request_review")
    assert again["duplicate"] and again["delivery_id"] == first["delivery_id"]
    assert len(world.events(run_id, "forge-approval-refused")) == 1


def test_a_slow_forge_does_not_hold_up_another_delivery(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_run, fast_run = world.run(), world.run()
    bodies = {
        run_id: review(run_id, world.head(run_id), "jordan-gh", number=world.number(run_id),
                       review_id=world.on_forge(run_id, "jordan-gh"))
        for run_id in (slow_run, fast_run)
    }  # fmt: skip
    github = world.github
    assert github is not None
    asked, release, finished = threading.Event(), threading.Event(), threading.Event()
    slow_pull = re.compile(rf".*/pulls/{world.number(slow_run)}(/.*)?")
    handle = github.handle

    def slow(seen: Seen) -> Answer:  # the forge stalls on the slow run's request
        if slow_pull.fullmatch(seen.path):
            asked.set()
            release.wait(2.5)
        return handle(seen)

    monkeypatch.setattr(github, "handle", slow)
    answers: dict[str, Any] = {}

    def first() -> None:
        try:
            answers["slow"] = deliver(world, "github", bodies[slow_run], "pull_request_review")
        finally:
            finished.set()

    stalled = threading.Thread(target=first, daemon=True)
    stalled.start()
    try:
        assert asked.wait(2), "the slow delivery never asked the forge"
        fast = deliver(world, "github", bodies[fast_run], "pull_request_review")
        answered_first = not finished.is_set()
    finally:
        release.set()
        stalled.join(5)
    assert answered_first, "the second delivery waited for the first one's forge calls"
    assert (fast["run_id"], fast["status"]) == (fast_run, "done"), fast
    assert (answers["slow"]["run_id"], answers["slow"]["status"]) == (slow_run, "done")
    for run_id in (slow_run, fast_run):
        (reconciled,) = world.events(run_id, "webhook-reconciled")
        assert reconciled.data["outcome"] == "forge-approval-recorded"


# -- merges ------------------------------------------------------------------------------------


def alerts_for(world: World, run_id: str) -> list[dict[str, Any]]:
    return [p for p in world.slack.posts if run_id in p["text"]]


def test_an_unapproved_merge_is_audited_and_alerts_security(world: World) -> None:
    run_id = world.run()
    head, number = world.head(run_id), world.number(run_id)
    receipt = deliver(world, "github", merged(run_id, head, number=number), "pull_request")
    assert receipt["status"] == "done" and receipt["state"] == "in_review"
    assert "without the factory's approval" in receipt["reason"]
    (event,) = world.events(run_id, "merge-unapproved")
    assert event.actor == "github:mona-gh" and event.data["merged_by_person"] == "mona"
    assert (event.data["merged_commit"], event.data["packaged_commit"]) == (head, head)
    assert event.data["merged_by"] == "mona-gh" and event.data["request"] == str(number)
    assert "recorded no approval" in event.data["why"]
    (alert,) = alerts_for(world, run_id)
    assert alert["channel"] == "U0SAM1234" and "merge-unapproved" in alert["text"]
    assert f"mona-gh merged github request #{number}" in alert["text"]
    (sent,) = world.events(run_id, "alert-sent")
    assert sent.data["to"] == "user:sam"
    # the run still waits for the factory's review: its state does not pretend otherwise
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_a_merge_after_a_refused_forged_approval_is_unapproved(world: World) -> None:
    """What the red team's forged approval was for: the merge that follows it alerts."""
    run_id = world.run()
    head, number = world.head(run_id), world.number(run_id)
    forged = review(run_id, head, "jordan-gh", number=number, review_id=424242)
    assert deliver(world, "github", forged, "pull_request_review")["status"] == "refused"
    receipt = deliver(world, "github", merged(run_id, head, number=number), "pull_request")
    (event,) = world.events(run_id, "merge-unapproved")
    assert "recorded no approval" in event.data["why"] and "without" in receipt["reason"]
    assert len(alerts_for(world, run_id)) == 1


def test_a_merge_of_another_commit_than_the_approved_one_alerts(world: World) -> None:
    run_id = world.run()
    assert approve(world, run_id, "jordan-gh")["status"] == "done"
    body = merged(run_id, OTHER_COMMIT, number=world.number(run_id))
    receipt = deliver(world, "github", body, "pull_request")
    (event,) = world.events(run_id, "merge-unapproved")
    assert "is not the packaged commit" in event.data["why"]
    assert event.data["merged_commit"] == OTHER_COMMIT
    assert "not the packaged commit" in receipt["reason"]
    assert len(alerts_for(world, run_id)) == 1


def test_a_merge_of_the_approved_commit_is_recorded_without_alert(world: World) -> None:
    run_id = world.run()
    head = world.head(run_id)
    assert approve(world, run_id, "jordan-gh")["status"] == "done"
    receipt = deliver(world, "github", merged(run_id, head, number=world.number(run_id)),
                      "pull_request")  # fmt: skip
    assert receipt["status"] == "done"
    (event,) = world.events(run_id, "merge-recorded")
    assert event.data["merged_commit"] == head
    assert not world.events(run_id, "merge-unapproved") and not alerts_for(world, run_id)


def test_changes_requested_on_the_forge_are_recorded_and_the_run_stays_in_review(
    world: World,
) -> None:
    run_id = world.run()
    number = world.number(run_id)
    asked_id = world.on_forge(run_id, "jordan-gh", "CHANGES_REQUESTED")
    body = review(run_id, world.head(run_id), "jordan-gh", state="changes_requested",
                  number=number, review_id=asked_id)  # fmt: skip
    receipt = deliver(world, "github", body, "pull_request_review")
    assert receipt["status"] == "done" and receipt["state"] == "in_review"
    (asked,) = world.events(run_id, "forge-changes-requested")
    assert (
        asked.actor == "github:jordan-gh"
        and asked.data["person"] == "jordan.lee"
        and asked.data["request"] == str(number)
    )
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
    assert event.data["branch"] == "hotfix/rate" and event.actor == "github:priya-gh"
    assert len(alerts_for(world, run_id)) == 1
    # nor does a factory/ branch naming a run that does not exist hide the commit
    unknown = merged(run_id, head, login="priya-gh", branch="factory/r-not-a-run")
    receipt = deliver(world, "github", unknown, "pull_request")
    assert receipt["run_id"] == run_id and "factory/r-not-a-run" in receipt["reason"]
    assert len(world.events(run_id, "merge-unapproved")) == 2
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
        assert approve(world, run_id, "jordan-gh")["status"] == "done"
        with store.atomic() as tx:  # as the CAB gate or a QA rejection leaves it
            tx.session.execute(
                text("UPDATE runs SET state = :state WHERE id = :id"),
                {"state": state.value, "id": run_id},
            )
        body = merged(run_id, head, number=world.number(run_id))
        receipt = deliver(world, "github", body, "pull_request")
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
        body=review(run_id, world.head(run_id), "jordan-gh", number=world.number(run_id)),
        received_at=datetime.now(UTC),
    )
    event = read_forge_event(delivered, "d-1")
    assert isinstance(event, ForgeEvent)
    found = gitlab_only.reconcile(event)
    assert found.status == "ignored" and "publishes to gitlab, not github" in found.reason
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW


# -- GitLab ----------------------------------------------------------------------------------


def test_gitlab_approvals_and_merges_are_reconciled(gitlab_world: World) -> None:
    world = gitlab_world
    run_id = world.run()
    head, iid = world.head(run_id), world.number(run_id)
    merge_first = world.run()
    receipt = deliver(world, "gitlab", gitlab_hook("merge-request-hook.merged.json",
                      merge_first, world.head(merge_first), iid=world.number(merge_first)),
                      "Merge Request Hook")  # fmt: skip
    assert "without the factory's approval" in receipt["reason"]
    assert world.events(merge_first, "merge-unapproved")[0].data["forge"] == "gitlab"
    world.on_forge(run_id, "root")
    receipt = deliver(world, "gitlab", gitlab_hook("merge-request-hook.approved.json", run_id,
                      head, iid=iid), "Merge Request Hook")  # fmt: skip
    assert receipt["status"] == "done", receipt
    (recorded,) = world.events(run_id, "forge-approval-recorded")
    assert recorded.actor == "user:jordan.lee" and recorded.data["request"] == str(iid)
    receipt = deliver(world, "gitlab", gitlab_hook("merge-request-hook.merged.json", run_id,
                      head, iid=iid), "Merge Request Hook")  # fmt: skip
    assert world.events(run_id, "merge-recorded")


def test_a_gitlab_approval_of_a_merge_request_from_a_fork_is_refused(gitlab_world: World) -> None:
    world = gitlab_world
    run_id = world.run(publish=False)
    iid = world.publish(run_id, head_repo="mallory/gitlab-test")
    world.on_forge(run_id, "root")
    body = gitlab_hook("merge-request-hook.approved.json", run_id, world.head(run_id), iid=iid)
    why = refused_because(world, run_id, deliver(world, "gitlab", body, "Merge Request Hook"))
    assert why == f"the request comes from a fork (mallory/gitlab-test), not from {GITLAB_REPO}"


def test_a_gitlab_approval_the_forge_does_not_hold_is_refused(gitlab_world: World) -> None:
    world = gitlab_world
    run_id = world.run()
    body = gitlab_hook("merge-request-hook.approved.json", run_id, world.head(run_id),
                       iid=world.number(run_id))  # fmt: skip
    why = refused_because(world, run_id, deliver(world, "gitlab", body, "Merge Request Hook"))
    assert why == "the forge holds no approval by root on this request"
    assert world.gitlab is not None
    reads = world.gitlab.calls("GET", "/approvals")
    assert reads and {r.who for r in reads} == {"app"}  # asked with the factory's token


@contextlib.contextmanager
def keeping_approvals(world: World) -> Iterator[GitLabStandin]:
    """The GitLab world's project keeping approvals across pushes (`reset_approvals_on_push`
    off, GitLab's default) for the block; reset again after it."""
    assert world.gitlab is not None
    world.gitlab.protect(GITLAB_REPO, reset_on_push=False)
    try:
        yield world.gitlab
    finally:
        world.gitlab.protect(GITLAB_REPO, reset_on_push=True)


KEPT = (
    "gitlab keeps approvals across pushes on main: turn on the project's \"Remove all "
    'approvals when commits are added to the source branch" (`reset_approvals_on_push`) and '
    "protect the branch so an approval cannot outlive the commit it was given on"
)


def test_a_gitlab_approval_is_refused_where_gitlab_keeps_approvals_across_pushes(
    gitlab_world: World,
) -> None:
    world = gitlab_world
    run_id = world.run()
    world.on_forge(run_id, "root")
    body = gitlab_hook("merge-request-hook.approved.json", run_id, world.head(run_id),
                       iid=world.number(run_id))  # fmt: skip
    with keeping_approvals(world) as gitlab:
        receipt = deliver(world, "gitlab", body, "Merge Request Hook")
        reads = gitlab.calls("GET", "/approvals")
    assert refused_because(world, run_id, receipt) == KEPT
    (refused,) = world.events(run_id, "forge-approval-refused")
    assert refused.actor == "user:jordan.lee"
    # the setting is read with the factory's token, from the project's approval settings
    assert any(r.path.endswith(f"/projects/{quote(GITLAB_REPO, safe='')}/approvals")
               or r.path.endswith(f"/projects/{GITLAB_REPO}/approvals") for r in reads)  # fmt: skip
    assert {r.who for r in reads} == {"app"}


def test_an_approval_of_a_decoy_head_pushed_back_to_the_packaged_commit_does_not_count(
    gitlab_world: World,
) -> None:
    """The red team's case: someone who can push the run's branch force-pushes a decoy, the
    reviewer approves it, the branch is force-pushed back to the packaged commit. GitLab
    reports the request's head now, so the approval reads as one of the packaged commit."""
    world = gitlab_world
    run_id = world.run()
    packaged, iid = world.head(run_id), world.number(run_id)
    body = gitlab_hook("merge-request-hook.approved.json", run_id, packaged, iid=iid)
    with keeping_approvals(world) as gitlab:
        gitlab.push(iid, "d" * 40)  # the decoy the reviewer looks at
        world.on_forge(run_id, "root")  # ...and approves
        gitlab.push(iid, packaged)  # the branch force-pushed back: GitLab keeps the approval
        assert "root" in gitlab.merge_requests[iid - 1].approved_by
        receipt = deliver(world, "gitlab", body, "Merge Request Hook")
    assert refused_because(world, run_id, receipt) == KEPT
    # where GitLab resets approvals on push, the push back dropped it: nothing to confirm
    assert world.gitlab is not None
    world.gitlab.push(iid, "d" * 40)
    world.on_forge(run_id, "root")
    world.gitlab.push(iid, packaged)
    assert world.gitlab.merge_requests[iid - 1].approved_by == []
    doc = json.loads(body)
    doc["object_attributes"]["updated_at"] = "2026-11-30 07:01:00 UTC"  # another delivery
    receipt = deliver(world, "gitlab", json.dumps(doc).encode(), "Merge Request Hook")
    assert receipt["status"] == "refused", receipt
    assert "the forge holds no approval by root on this request" in receipt["reason"]
    assert world.factory.store.require_run(run_id).state is RunState.IN_REVIEW
    assert not world.events(run_id, "forge-approval-recorded")


def test_a_gitlab_approval_is_refused_when_its_approval_settings_cannot_be_read(
    gitlab_world: World,
) -> None:
    world = gitlab_world
    run_id = world.run()
    world.on_forge(run_id, "root")
    body = gitlab_hook("merge-request-hook.approved.json", run_id, world.head(run_id),
                       iid=world.number(run_id))  # fmt: skip
    assert world.gitlab is not None
    world.gitlab.fail_next(403, path_contains="/protected_branches/")
    why = refused_because(world, run_id, deliver(world, "gitlab", body, "Merge Request Hook"))
    assert why.startswith("the forge could not say whether it drops approvals on a push to main")
    assert "403" in why and "approve again once it answers" in why
