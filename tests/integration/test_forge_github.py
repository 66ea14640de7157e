"""GitHub publishing: the production client (`review.forges.github.GitHubHost`) and the git
push against loopback stand-ins (GitHub Enterprise Server's REST API v3, git smart HTTP
through `git http-backend`), and one packaged run of the real factory published end to end."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from codefactory.domain import ChangeKind, Run, RunState
from codefactory.review.forges.confirm import approval_problem
from codefactory.review.forges.errors import (
    ForgeApiError,
    ForgeConflict,
    ForgeForbidden,
    ForgeInvalid,
    ForgeNotFound,
    ForgeRateLimited,
    ForgeUnauthorized,
    ForgeUnavailable,
)
from codefactory.review.forges.github import GitHubHost
from codefactory.review.forges.publishing import RequestPublishing
from codefactory.review.forges.push import push_branch
from codefactory.review.forges.settings import ForgeSettings
from codefactory.review.port import CommitVerdict, ConfirmedApproval, RequestDraft
from codefactory.runs.tickets import accept_ticket
from tests.forge_standins.common import (
    NAMED_ERRORS,
    TICKET,
    approval_on_main,
    local_and_forge_copy,
    publishing_factory,
    unopened_without_a_token,
)
from tests.forge_standins.git_http import GitHttpStandin, git
from tests.forge_standins.github import GitHubStandin

APP_TOKEN = "ghs_app_installation_token_for_tests"
USER_TOKEN = "gho_priya_oauth_token_for_tests"
REPO = "acme/payments"


def push_header(token: str = APP_TOKEN) -> str:
    return "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[tuple[GitHttpStandin, GitHubStandin]]:
    git_host = GitHttpStandin(tmp_path / "github-git", authorization=push_header())
    api = GitHubStandin(git=git_host, app_token=APP_TOKEN, user_tokens={USER_TOKEN: "Codertocat"})
    try:
        yield git_host, api
    finally:
        api.stop()
        git_host.stop()


@pytest.fixture
def local(tmp_path: Path, forge: tuple[GitHttpStandin, GitHubStandin]) -> tuple[Path, str]:
    """The factory's local bare repository holding a signed-off commit on top of `main`, and
    the forge's copy of the repository holding `main`."""
    return local_and_forge_copy(tmp_path, forge[0], REPO)


_OPEN: list[GitHubHost] = []


def host(api: GitHubStandin, git_host: GitHttpStandin, **changes: object) -> GitHubHost:
    settings = ForgeSettings.model_validate(
        {"type": "github", "base_url": api.url, "git_url": git_host.url, "max_retry_wait_s": 5}
        | changes
    )
    made = GitHubHost(settings, app_token=APP_TOKEN)
    _OPEN.append(made)
    return made


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def pushed(git_host: GitHttpStandin, bare: Path, commit: str, branch: str = "factory/r-1") -> None:
    push_branch(
        forge="github",
        git_dir=bare,
        remote_url=f"{git_host.url}/{REPO}.git",
        branch=branch,
        commit=commit,
        auth_header=push_header(),
    )


def draft(commit: str, branch: str = "factory/r-1") -> RequestDraft:
    return RequestDraft(REPO, branch, "main", commit, "SVC-1: fix it", "## Summary\n\nbody")


def publishing(
    tmp_path: Path,
    api: GitHubStandin,
    git_host: GitHttpStandin,
    bare: Path,
    events: list[tuple[str, dict[str, object]]],
) -> tuple[RequestPublishing, Path]:
    """The production publishing step against the stand-ins, recording its audit events into
    `events` as (name, data), and a package under `tmp_path` holding a low risk report."""
    package = tmp_path / "package"
    (package / "evidence").mkdir(parents=True)
    (package / "risk.json").write_text('{"level": "low", "score": 5, "factors": []}')
    publish = RequestPublishing(
        forge="github",
        host=lambda person: host(api, git_host),
        repository_path=lambda repository: bare,
        user_token=lambda person: USER_TOKEN,
        trigger_of=lambda run: None,
        record=lambda event: events.append(
            (event.name, {"actor": event.actor, "run_id": event.run_id, **event.data})
        ),
    )
    return publish, package


def packaged_run(run_id: str, base: str, commit: str, package: Path) -> Run:
    """A packaged fix-lint run `run_id` of REPO on the branch `factory/<run_id>`."""
    number = run_id.removeprefix("r-")
    return Run(
        id=run_id, trigger_id=f"t-{number}", kind=ChangeKind.FIX_LINT, repository=REPO,
        sponsor="priya.shah", agent_id="agent:recipe", state=RunState.PACKAGED, reason="",
        base_commit=base, head_commit=commit, branch=f"factory/{run_id}",
        package_dir=str(package), created_at=datetime.now(UTC),
    )  # fmt: skip


# -- push ----------------------------------------------------------------------------------


def test_the_branch_is_pushed_once_never_forced_and_the_token_stays_out_of_git_config(
    forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, _ = forge
    bare, commit = local
    pushed(git_host, bare, commit)
    assert git_host.head(REPO, "factory/r-1") == commit
    assert all(r.authorization == push_header() for r in git_host.requests)
    pushed(git_host, bare, commit)  # idempotent: the same commit is already there
    base = git(bare, "rev-parse", "refs/heads/main")
    with pytest.raises(ForgeConflict) as refused:
        pushed(git_host, bare, base)  # another commit: refused, never forced
    assert refused.value.status == 409 and refused.value.kind == "forge-conflict"
    assert git_host.head(REPO, "factory/r-1") == commit
    assert APP_TOKEN not in (bare / "config").read_text()
    assert git_host.requests and git_host.argv_leaks == []  # never on a command line


def test_git_push_failures_are_named(
    forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, _ = forge
    bare, commit = local
    with pytest.raises(ForgeUnauthorized):
        push_branch(
            forge="github", git_dir=bare, remote_url=f"{git_host.url}/{REPO}.git",
            branch="factory/r-2", commit=commit, auth_header=push_header("wrong"),
        )  # fmt: skip
    with pytest.raises(ForgeNotFound):
        push_branch(
            forge="github", git_dir=bare, remote_url=f"{git_host.url}/acme/absent.git",
            branch="factory/r-2", commit=commit, auth_header=push_header(),
        )  # fmt: skip
    git_host.fail_next(403)
    with pytest.raises(ForgeForbidden):
        pushed(git_host, bare, commit, "factory/r-2")
    git_host.fail_next(503)
    with pytest.raises(ForgeUnavailable):
        pushed(git_host, bare, commit, "factory/r-2")
    assert git_host.head(REPO, "factory/r-2") is None


# -- the REST client -----------------------------------------------------------------------


def test_a_draft_pull_request_is_opened_under_the_users_token_once(
    forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    bare, commit = local
    github = host(api, git_host)
    with pytest.raises(ForgeInvalid) as missing:  # the head branch is not on the forge yet
        github.open_request(draft(commit), user_token=USER_TOKEN)
    assert "Validation Failed" in str(missing.value)
    pushed(git_host, bare, commit)
    opened = github.open_request(draft(commit), user_token=USER_TOKEN)
    assert (opened.number, opened.author) == ("1", "Codertocat")
    assert opened.url.endswith(f"/{REPO}/pull/1")
    (pull,) = api.pulls
    assert pull.draft and pull.opened_by == "Codertocat" and pull.sha == commit
    post = api.calls("POST", "/pulls")[-1]  # the first was refused: no head branch yet
    assert post.headers["accept"] == "application/vnd.github+json"
    assert post.headers["x-github-api-version"] == "2022-11-28"
    assert post.path == f"/api/v3/repos/{REPO}/pulls"  # Enterprise Server's REST base
    again = github.open_request(draft(commit), user_token=USER_TOKEN)
    assert again == opened and len(api.calls("POST", "/pulls")) == 2


def test_a_pull_request_that_appeared_meanwhile_is_recognised_by_its_422(
    forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    bare, commit = local
    pushed(git_host, bare, commit)
    github = host(api, git_host)
    first = github.open_request(draft(commit), user_token=USER_TOKEN)
    api.fail_next(200, method="GET", path_contains="/pulls", body=[])  # the race: not seen
    again = github.open_request(draft(commit), user_token=USER_TOKEN)
    assert again.number == first.number and len(api.pulls) == 1
    assert len(api.calls("POST", "/pulls")) == 2  # the second answered 422 "already exists"


@pytest.mark.parametrize(("status", "error"), NAMED_ERRORS)
def test_each_refusal_is_its_named_error(
    forge: tuple[GitHttpStandin, GitHubStandin],
    local: tuple[Path, str],
    status: int,
    error: type[ForgeApiError],
) -> None:
    git_host, api = forge
    _, commit = local
    api.fail_next(status, path_contains="/statuses/")
    with pytest.raises(error) as raised:
        host(api, git_host).set_status(REPO, commit, CommitVerdict("success", "ok"))
    assert raised.value.status == status and raised.value.forge == "github"
    assert len(api.calls("POST", "/statuses/")) == 1


def test_real_refusals_a_wrong_token_an_unknown_repository_an_unknown_commit(
    forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    _, commit = local
    github = host(api, git_host)
    with pytest.raises(ForgeUnauthorized, match="Bad credentials"):
        github.open_request(draft(commit), user_token="gho_revoked")
    with pytest.raises(ForgeNotFound):
        github.set_status("acme/absent", commit, CommitVerdict("success", "ok"))
    with pytest.raises(ForgeInvalid, match="No commit found"):
        github.set_status(REPO, "f" * 40, CommitVerdict("success", "ok"))


@pytest.mark.usefixtures("local")
def test_the_standin_refuses_bodies_outside_githubs_request_schema(
    forge: tuple[GitHttpStandin, GitHubStandin],
) -> None:
    _, api = forge
    url = f"{api.url}/api/v3/repos/{REPO}/pulls"
    auth = {"Authorization": f"Bearer {USER_TOKEN}"}
    for body, said in (
        (
            {"title": "t", "head": "h", "base": "main", "drafts": True},
            '"drafts" is not a permitted',
        ),
        ({"title": "t", "base": "main"}, '"head" wasn\'t supplied'),
        ({"title": "t", "head": "h", "base": "main", "draft": "yes"}, "properties/draft"),
    ):
        answer = httpx.post(url, json=body, headers=auth)
        assert answer.status_code == 422 and said in answer.json()["message"], answer.text


# -- confirming an approval and a user's login ---------------------------------------------


def test_an_approval_is_confirmed_from_the_pull_request_and_its_review_with_the_app_token(
    forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    bare, commit = local
    pushed(git_host, bare, commit)
    github = host(api, git_host)
    github.open_request(draft(commit), user_token=USER_TOKEN)
    review = api.review(1, "omar")
    confirmed = github.confirm_approval(
        REPO, request="1", reviewer_login="omar", review_id=str(review)
    )
    # GitHub's review names its commit_id
    assert confirmed == approval_on_main(commit, REPO, "Codertocat", commit_bound=True)
    reads = api.calls("GET", "/pulls/1")
    assert [r.path for r in reads] == [
        f"/api/v3/repos/{REPO}/pulls/1",
        f"/api/v3/repos/{REPO}/pulls/1/reviews/{review}",
        f"/api/v3/repos/{REPO}/pulls/1/reviews",
    ]
    assert {r.who for r in reads} == {"app"}  # never the sponsor's token
    problem = approval_problem(
        confirmed,
        expected_repository=REPO,
        base_branch="main",
        packaged_commit=commit,
        reviewer_login="omar",
    )
    assert problem == ""


def test_a_review_of_another_commit_by_someone_else_or_dismissed_is_no_approval(
    forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    bare, commit = local
    pushed(git_host, bare, commit)
    github = host(api, git_host)
    github.open_request(draft(commit), user_token=USER_TOKEN)

    def confirm(review: int, login: str = "omar") -> ConfirmedApproval:
        return github.confirm_approval(
            REPO, request="1", reviewer_login=login, review_id=str(review)
        )

    assert not confirm(api.review(1, "omar", "DISMISSED")).approved
    assert not confirm(api.review(1, "omar", "COMMENTED")).approved
    assert not confirm(api.review(1, "mallory"), login="omar").approved  # the claim lied
    approved = api.review(1, "omar")
    assert confirm(approved).approved
    api.review(1, "omar", "COMMENTED")  # a comment since changes nothing
    assert confirm(approved).approved
    api.review(1, "omar", "CHANGES_REQUESTED")  # changes asked since: the approval is gone
    assert not confirm(approved).approved
    api.review(1, "omar", commit="f" * 40)  # approving a later commit does not bring it back
    assert not confirm(approved).approved
    stale = confirm(api.review(1, "omar", commit="e" * 40))
    assert stale.approved and stale.commit == "e" * 40
    said = approval_problem(
        stale,
        expected_repository=REPO,
        base_branch="main",
        packaged_commit=commit,
        reviewer_login="omar",
    )
    assert "not the packaged commit" in said
    with pytest.raises(ForgeNotFound):
        confirm(99999)
    with pytest.raises(ForgeInvalid):
        github.confirm_approval(REPO, request="1/../2", reviewer_login="omar", review_id="1")


def test_a_pull_request_from_a_fork_is_confirmed_as_one(
    forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    bare, commit = local
    pushed(git_host, bare, commit)
    github = host(api, git_host)
    github.open_request(draft(commit), user_token=USER_TOKEN)
    api.pulls[0].head_repo = "mallory/payments"
    review = api.review(1, "omar")
    confirmed = github.confirm_approval(
        REPO, request="1", reviewer_login="omar", review_id=str(review)
    )
    assert confirmed.head_repository == "mallory/payments"
    api.pulls[0].head_repo = None  # the fork was deleted: GitHub answers head.repo null
    gone = github.confirm_approval(REPO, request="1", reviewer_login="omar", review_id=str(review))
    assert gone.head_repository == ""
    for each in (confirmed, gone):
        assert "from a fork" in approval_problem(
            each,
            expected_repository=REPO,
            base_branch="main",
            packaged_commit=commit,
            reviewer_login="omar",
        )


@pytest.mark.usefixtures("local")
def test_a_user_token_names_its_login_and_an_app_or_unknown_token_is_refused(
    forge: tuple[GitHttpStandin, GitHubStandin],
) -> None:
    git_host, api = forge
    github = host(api, git_host)
    assert github.user_login(USER_TOKEN) == "Codertocat"
    (read,) = api.calls("GET", "/user")
    assert read.path == "/api/v3/user" and read.who == "Codertocat"
    with pytest.raises(ForgeForbidden, match="not accessible by integration"):
        github.user_login(APP_TOKEN)
    with pytest.raises(ForgeUnauthorized, match="Bad credentials"):
        github.user_login("gho_revoked")


def test_a_rate_limit_is_waited_out_as_retry_after_says_then_the_call_succeeds(
    forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    bare, commit = local
    pushed(git_host, bare, commit)
    github = host(api, git_host)
    api.fail_next(403, rate_limit=True, retry_after="1", path_contains="/pulls", method="POST")
    started = time.monotonic()
    opened = github.open_request(draft(commit), user_token=USER_TOKEN)
    assert time.monotonic() - started >= 1.0
    assert opened.number == "1" and len(api.calls("POST", "/pulls")) == 2
    api.fail_next(429, retry_after="60", path_contains="/protection")  # longer than allowed
    with pytest.raises(ForgeRateLimited) as limited:
        github.protection(REPO, "main")
    assert limited.value.retry_after_s == 60.0


def test_a_5xx_on_post_is_not_retried_but_on_get_it_is(
    forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    bare, commit = local
    pushed(git_host, bare, commit)
    github = host(api, git_host)
    api.fail_next(502, retry_after="0", path_contains="/pulls", method="POST")
    with pytest.raises(ForgeUnavailable):
        github.open_request(draft(commit), user_token=USER_TOKEN)
    assert len(api.calls("POST", "/pulls")) == 1 and not api.pulls
    api.fail_next(503, retry_after="0", path_contains="/protection")
    assert github.protection(REPO, "main").protected is False
    assert len(api.calls("GET", "/protection")) == 2


def test_sarif_is_uploaded_gzipped_and_base64_with_the_app_token(
    forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    _, commit = local
    log = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "ruff"}}, "results": []}]}
    upload = host(api, git_host).upload_sarif(
        REPO, commit=commit, ref="refs/heads/factory/r-1", sarif=json.dumps(log).encode()
    )
    (sent,) = api.sarifs
    assert upload == sent.id and sent.log == log and sent.sent_by == "app"
    assert sent.ref == "refs/heads/factory/r-1" and sent.commit_sha == commit


@pytest.mark.usefixtures("local")
def test_branch_protection_is_read_and_its_gaps_named(
    forge: tuple[GitHttpStandin, GitHubStandin],
) -> None:
    git_host, api = forge
    github = host(api, git_host)
    bare = github.protection(REPO, "main")
    assert not bare.protected and bare.gaps(status_context="codefactory/gate")
    checks = {"strict": True, "contexts": [], "checks": [{"context": "codefactory/gate"}]}
    reviews = {"dismiss_stale_reviews": True, "required_approving_review_count": 2}
    api.protections[(REPO, "release/1")] = {
        "url": f"{api.url}/api/v3/repos/{REPO}/branches/release/1/protection",
        "required_status_checks": checks,
        "enforce_admins": {"enabled": True},
        "required_pull_request_reviews": reviews,
    }
    rules = github.protection(REPO, "release/1")
    assert (rules.required_approvals, rules.dismisses_stale_approvals) == (2, True)
    assert not rules.admins_bypass and rules.required_checks == ("codefactory/gate",)
    assert rules.gaps(status_context="codefactory/gate") == []
    (get,) = api.calls("GET", "release/1")
    assert "release%2F1" in get.raw_path and get.who == "app"


# -- end to end through the factory --------------------------------------------------------


@pytest.mark.usefixtures("bwrap_available")
def test_a_packaged_run_is_pushed_opened_as_a_draft_under_its_sponsor_and_given_its_status(
    tmp_path: Path,
    uv_cache: Path,
    forge: tuple[GitHttpStandin, GitHubStandin],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    git_host, api = forge
    factory, repo = publishing_factory(
        tmp_path, uv_cache, monkeypatch, git_host, repository=REPO, binding=REPO,
        app_token=APP_TOKEN,
        forge={"type": "github", "base_url": api.url, "user_tokens": {"priya.shah": USER_TOKEN}},
    )  # fmt: skip
    run = accept_ticket(factory, payload=TICKET.read_bytes(), repo=repo)
    assert run.state is RunState.IN_REVIEW, run.reason
    assert run.repository == REPO and run.sponsor == "priya.shah"

    assert git_host.head(REPO, run.branch) == run.head_commit  # the packaged commit
    assert git_host.argv_leaks == []  # the push credential was on no command line
    assert "-----BEGIN SSH SIGNATURE-----" in git(
        git_host.root / f"{REPO}.git", "cat-file", "commit", run.head_commit
    )  # signed by the agent, as built
    (pull,) = api.pulls
    assert pull.opened_by == "Codertocat" and pull.draft  # the sponsor's token, not the app's
    assert pull.head == run.branch and pull.base == "main" and pull.title.startswith("SVC-102")
    package = Path(run.package_dir)
    risk = json.loads((package / "risk.json").read_text())
    assert f"**{risk['level']}**" in pull.body
    assert "## Rollback plan" in pull.body and "## Summary" in pull.body
    assert f"Change package for run {run.id}" in pull.body and run.head_commit in pull.body
    assert str(tmp_path) not in pull.body and "file://" not in pull.body  # no host path
    assert "`summary.md` sha256 `" in pull.body  # package files named relatively
    (status,) = api.statuses
    assert (status.sha, status.state, status.set_by) == (run.head_commit, "success", "app")
    assert status.context == "codefactory/gate"

    events = {e.name: e.data for e in factory.store.audit_events(run.id)}
    assert events["forge-branch-pushed"]["commit"] == run.head_commit
    opened = events["pull-request-opened"]
    assert (opened["number"], opened["author"], opened["forge"]) == ("1", "Codertocat", "github")
    assert opened["url"].endswith(f"/{REPO}/pull/1") and opened["repository"] == REPO
    assert events["commit-status-set"]["state"] == "success"
    sarif_files = sorted((package / "evidence").glob("*.sarif"))
    assert sarif_files  # the gate's evidence: lint, SAST, secrets ... as SARIF
    (upload,) = api.sarifs
    assert upload.sent_by == "app" and upload.commit_sha == run.head_commit
    assert upload.ref == f"refs/heads/{run.branch}"
    assert len(upload.log["runs"]) >= len(sarif_files)  # one log, every check's runs
    assert events["code-scanning-uploaded"]["sarif_id"] == upload.id
    assert "forge-publish-failed" not in events

    # a sponsor without a GitHub token: the request is not opened under anyone else's
    other = unopened_without_a_token(factory, repo)
    assert other.sponsor == "jordan.lee" and len(api.pulls) == 1


def test_a_branch_held_at_another_commit_is_an_audited_conflict_and_nothing_is_opened(
    tmp_path: Path, forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    bare, commit = local
    base = git(bare, "rev-parse", "refs/heads/main")
    pushed(git_host, bare, base, "factory/r-7")  # someone else's commit on the run's branch
    events: list[tuple[str, dict[str, object]]] = []
    publish, package = publishing(tmp_path, api, git_host, bare, events)
    run = packaged_run("r-7", base, commit, package)
    publish(run, package)
    ((name, data),) = events
    assert name == "forge-publish-failed"
    assert (data["step"], data["error"], data["status"]) == ("push branch", "forge-conflict", 409)
    assert git_host.head(REPO, "factory/r-7") == base and not api.pulls and not api.statuses

    local_run = replace(run, id="r-8", repository="local:/srv/payments", branch="factory/r-8")
    publish(local_run, package)
    assert events[-1][1]["error"] == "NotPublishable" and not git_host.head(REPO, "factory/r-8")


def test_a_request_someone_else_opened_on_the_factorys_branch_is_not_adopted(
    tmp_path: Path, forge: tuple[GitHttpStandin, GitHubStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    bare, commit = local
    base = git(bare, "rev-parse", "refs/heads/main")
    api.user_tokens["gho_mallory_token"] = "mallory"
    events: list[tuple[str, dict[str, object]]] = []
    publish, package = publishing(tmp_path, api, git_host, bare, events)
    run = packaged_run("r-9", base, commit, package)
    pushed(git_host, bare, commit, "factory/r-9")  # the factory's own push, then a stranger:
    host(api, git_host).open_request(draft(commit, "factory/r-9"), user_token="gho_mallory_token")
    publish(run, package)
    names = [name for name, _ in events]
    assert names == ["forge-branch-pushed", "forge-publish-failed"]
    failed = events[-1][1]
    assert (failed["step"], failed["error"]) == ("open request", "forge-foreign-request")
    assert "opened by mallory, not by the sponsor's account Codertocat" in str(failed["message"])
    assert not api.statuses and not api.sarifs  # nothing after the refusal
    (read,) = api.calls("GET", "/user")
    assert read.who == "Codertocat"  # the sponsor's login, asked with their own token

    events.clear()  # the sponsor's own request, opened before, is adopted
    mine = replace(run, id="r-10", branch="factory/r-10")
    pushed(git_host, bare, commit, "factory/r-10")
    earlier = host(api, git_host).open_request(draft(commit, "factory/r-10"), user_token=USER_TOKEN)
    publish(mine, package)
    opened = dict(events)["pull-request-opened"]
    assert (opened["number"], opened["author"]) == (earlier.number, "Codertocat")
    assert "forge-publish-failed" not in dict(events)
