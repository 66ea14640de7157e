"""GitLab publishing: the production client (`review.forges.gitlab.GitLabHost`) and the git
push against loopback stand-ins (GitLab's REST API v4, git smart HTTP through
`git http-backend`), and one packaged run of the real factory published end to end."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codefactory.domain import RunState
from codefactory.review.forges.confirm import approval_problem
from codefactory.review.forges.errors import (
    ForgeApiError,
    ForgeInvalid,
    ForgeNotFound,
    ForgeRateLimited,
    ForgeUnauthorized,
    ForgeUnavailable,
)
from codefactory.review.forges.gitlab import GitLabHost
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
from tests.forge_standins.gitlab import GitLabStandin

APP_TOKEN = "glpat-project-bot-token-for-tests"
USER_TOKEN = "gloas-priya-oauth-token-for-tests"
REPO = "payments/platform/ledger"
ENCODED = "payments%2Fplatform%2Fledger"


def push_header(token: str = APP_TOKEN) -> str:
    return "Basic " + base64.b64encode(f"oauth2:{token}".encode()).decode()


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[tuple[GitHttpStandin, GitLabStandin]]:
    git_host = GitHttpStandin(tmp_path / "gitlab-git", authorization=push_header())
    api = GitLabStandin(git=git_host, app_token=APP_TOKEN, user_tokens={USER_TOKEN: "root"})
    try:
        yield git_host, api
    finally:
        api.stop()
        git_host.stop()


@pytest.fixture
def local(tmp_path: Path, forge: tuple[GitHttpStandin, GitLabStandin]) -> tuple[Path, str]:
    """The factory's local bare repository with a commit on top of `main`, pushed as
    `factory/r-1`; the forge's project holds `main`."""
    bare, commit = local_and_forge_copy(tmp_path, forge[0], REPO)
    push_branch(
        forge="gitlab", git_dir=bare, remote_url=f"{forge[0].url}/{REPO}.git",
        branch="factory/r-1", commit=commit, auth_header=push_header(),
    )  # fmt: skip
    return bare, commit


_OPEN: list[GitLabHost] = []


def host(api: GitLabStandin, git_host: GitHttpStandin) -> GitLabHost:
    settings = ForgeSettings(
        type="gitlab", base_url=api.url, git_url=git_host.url, max_retry_wait_s=5
    )
    made = GitLabHost(settings, app_token=APP_TOKEN)
    _OPEN.append(made)
    return made


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def draft(commit: str, branch: str = "factory/r-1") -> RequestDraft:
    return RequestDraft(REPO, branch, "main", commit, "SVC-1: fix it", "## Summary\n\nbody")


def test_the_remote_and_push_credential_are_gitlabs(
    forge: tuple[GitHttpStandin, GitLabStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    _, commit = local
    gitlab = host(api, git_host)
    assert gitlab.remote_url(REPO) == f"{git_host.url}/{REPO}.git"
    assert gitlab.push_header() == push_header()
    assert git_host.head(REPO, "factory/r-1") == commit


def test_a_draft_merge_request_is_opened_under_the_users_token_once(
    forge: tuple[GitHttpStandin, GitLabStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    _, commit = local
    gitlab = host(api, git_host)
    opened = gitlab.open_request(draft(commit), user_token=USER_TOKEN)
    assert (opened.number, opened.author) == ("1", "root")
    assert opened.url.endswith(f"/{REPO}/-/merge_requests/1")
    (mr,) = api.merge_requests
    assert mr.title == "Draft: SVC-1: fix it" and mr.opened_by == "root" and mr.sha == commit
    (post,) = api.calls("POST", "/merge_requests")
    assert post.raw_path == f"/api/v4/projects/{ENCODED}/merge_requests"  # one encoded id
    assert post.headers["authorization"] == f"Bearer {USER_TOKEN}"
    again = gitlab.open_request(draft(commit), user_token=USER_TOKEN)
    assert again == opened and len(api.calls("POST", "/merge_requests")) == 1


def test_a_merge_request_that_appeared_meanwhile_is_recognised_by_its_409(
    forge: tuple[GitHttpStandin, GitLabStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    _, commit = local
    gitlab = host(api, git_host)
    first = gitlab.open_request(draft(commit), user_token=USER_TOKEN)
    api.fail_next(200, method="GET", path_contains="/merge_requests", body=[])
    again = gitlab.open_request(draft(commit), user_token=USER_TOKEN)
    assert again.number == first.number and len(api.merge_requests) == 1
    assert len(api.calls("POST", "/merge_requests")) == 2


def test_a_missing_source_branch_is_refused(
    forge: tuple[GitHttpStandin, GitLabStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    _, commit = local
    with pytest.raises(ForgeInvalid, match="does not exist"):
        host(api, git_host).open_request(draft(commit, "factory/r-9"), user_token=USER_TOKEN)


@pytest.mark.parametrize(("status", "error"), NAMED_ERRORS)
def test_each_refusal_is_its_named_error(
    forge: tuple[GitHttpStandin, GitLabStandin],
    local: tuple[Path, str],
    status: int,
    error: type[ForgeApiError],
) -> None:
    git_host, api = forge
    _, commit = local
    api.fail_next(status, path_contains="/statuses/")
    with pytest.raises(error) as raised:
        host(api, git_host).set_status(REPO, commit, CommitVerdict("success", "ok"))
    assert raised.value.status == status and raised.value.forge == "gitlab"
    assert len(api.calls("POST", "/statuses/")) == 1


def test_real_refusals_a_wrong_token_an_unknown_project_an_unknown_commit(
    forge: tuple[GitHttpStandin, GitLabStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    _, commit = local
    gitlab = host(api, git_host)
    with pytest.raises(ForgeUnauthorized, match="401 Unauthorized"):
        gitlab.open_request(draft(commit), user_token="gloas-revoked")
    with pytest.raises(ForgeNotFound, match="Project Not Found"):
        gitlab.set_status("payments/absent", commit, CommitVerdict("success", "ok"))
    with pytest.raises(ForgeNotFound, match="Commit Not Found"):
        gitlab.set_status(REPO, "f" * 40, CommitVerdict("success", "ok"))


def test_the_standin_refuses_bodies_outside_gitlabs_documented_parameters(
    forge: tuple[GitHttpStandin, GitLabStandin], local: tuple[Path, str]
) -> None:
    _, api = forge
    url = f"{api.url}/api/v4/projects/{ENCODED}/merge_requests"
    auth = {"Authorization": f"Bearer {USER_TOKEN}"}
    for body, said in (
        ({"source_branch": "a", "target_branch": "main", "title": "t", "draft": True}, "draft"),
        ({"source_branch": "a", "title": "t"}, "target_branch is missing"),
        ({"source_branch": "a", "target_branch": "main", "title": 5}, "title is invalid"),
    ):
        answer = httpx.post(url, json=body, headers=auth)
        assert answer.status_code == 400 and said in answer.json()["error"], answer.text


def test_an_approval_is_confirmed_from_the_merge_request_and_its_approvals_with_the_app_token(
    forge: tuple[GitHttpStandin, GitLabStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    _, commit = local
    gitlab = host(api, git_host)
    gitlab.open_request(draft(commit), user_token=USER_TOKEN)

    def confirm(login: str = "omar") -> ConfirmedApproval:
        return gitlab.confirm_approval(REPO, request="1", reviewer_login=login, review_id="")

    assert not confirm().approved  # a webhook said so; GitLab does not
    api.merge_requests[0].approved_by.append("omar")
    confirmed = confirm()
    assert confirmed == approval_on_main(commit, REPO, "root")
    assert not confirm("mallory").approved
    reads = api.calls("GET", "/merge_requests/1")
    assert {r.raw_path for r in reads} == {
        f"/api/v4/projects/{ENCODED}/merge_requests/1",
        f"/api/v4/projects/{ENCODED}/merge_requests/1/approvals",
    }
    assert {r.who for r in reads} == {"app"}
    assert (
        approval_problem(
            confirmed,
            expected_repository=REPO,
            base_branch="main",
            packaged_commit=commit,
            reviewer_login="omar",
        )
        == ""
    )
    with pytest.raises(ForgeNotFound):
        gitlab.confirm_approval(REPO, request="9", reviewer_login="omar", review_id="")
    with pytest.raises(ForgeInvalid):
        gitlab.confirm_approval(REPO, request="1?x", reviewer_login="omar", review_id="")


def test_a_merge_request_from_a_fork_names_the_fork_or_its_id(
    forge: tuple[GitHttpStandin, GitLabStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    _, commit = local
    gitlab = host(api, git_host)
    gitlab.open_request(draft(commit), user_token=USER_TOKEN)
    api.merge_requests[0].approved_by.append("omar")
    api.merge_requests[0].source_project_id = 77
    api.forks[77] = "mallory/ledger"
    seen = gitlab.confirm_approval(REPO, request="1", reviewer_login="omar", review_id="")
    assert seen.head_repository == "mallory/ledger" and seen.base_repository == REPO
    del api.forks[77]  # a private fork the app may not read
    hidden = gitlab.confirm_approval(REPO, request="1", reviewer_login="omar", review_id="")
    assert hidden.head_repository == "project 77"
    for each in (seen, hidden):
        assert "from a fork" in approval_problem(
            each,
            expected_repository=REPO,
            base_branch="main",
            packaged_commit=commit,
            reviewer_login="omar",
        )


@pytest.mark.usefixtures("local")
def test_a_user_token_names_its_username(forge: tuple[GitHttpStandin, GitLabStandin]) -> None:
    git_host, api = forge
    gitlab = host(api, git_host)
    assert gitlab.user_login(USER_TOKEN) == "root"
    (read,) = api.calls("GET", "/user")
    assert read.raw_path == "/api/v4/user" and read.headers["authorization"] == (
        f"Bearer {USER_TOKEN}"
    )
    with pytest.raises(ForgeUnauthorized):
        gitlab.user_login("glpat-revoked")


def test_the_status_is_set_with_the_app_token_and_setting_it_again_is_harmless(
    forge: tuple[GitHttpStandin, GitLabStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    _, commit = local
    gitlab = host(api, git_host)
    gitlab.set_status(REPO, commit, CommitVerdict("failure", "gate failed"))
    gitlab.set_status(REPO, commit, CommitVerdict("success", "gate passed"))
    gitlab.set_status(REPO, commit, CommitVerdict("success", "gate passed"))  # 400: no-op
    assert [(s.state, s.name, s.set_by) for s in api.statuses] == [
        ("failed", "codefactory/gate", "app"),
        ("success", "codefactory/gate", "app"),
    ]
    assert gitlab.upload_sarif(REPO, commit=commit, ref="refs/heads/x", sarif=b"{}") is None


def test_a_rate_limit_is_waited_out_as_retry_after_says_and_5xx_on_post_is_not_retried(
    forge: tuple[GitHttpStandin, GitLabStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    _, commit = local
    gitlab = host(api, git_host)
    api.fail_next(429, retry_after="1", path_contains="/merge_requests", method="POST")
    started = time.monotonic()
    opened = gitlab.open_request(draft(commit), user_token=USER_TOKEN)
    assert time.monotonic() - started >= 1.0 and opened.number == "1"
    assert len(api.calls("POST", "/merge_requests")) == 2
    api.fail_next(503, retry_after="0", path_contains="/statuses/")
    with pytest.raises(ForgeUnavailable):
        gitlab.set_status(REPO, commit, CommitVerdict("success", "ok"))
    assert len(api.calls("POST", "/statuses/")) == 1 and not api.statuses
    api.fail_next(502, retry_after="0", path_contains="/protected_branches/")
    assert gitlab.protection(REPO, "main").protected is False
    assert len(api.calls("GET", "/protected_branches/")) == 2
    api.fail_next(429, retry_after="120", path_contains="/protected_branches/")
    with pytest.raises(ForgeRateLimited) as limited:
        gitlab.protection(REPO, "main")
    assert limited.value.retry_after_s == 120.0


def test_protection_reads_the_protected_branch_the_approval_rules_and_the_pipeline_gate(
    forge: tuple[GitHttpStandin, GitLabStandin], local: tuple[Path, str]
) -> None:
    git_host, api = forge
    gitlab = host(api, git_host)
    assert gitlab.protection(REPO, "main").gaps(status_context="codefactory/gate")
    api.protected[(REPO, "main")] = {
        "id": 1,
        "name": "main",
        "push_access_levels": [{"access_level": 40, "access_level_description": "Maintainers"}],
        "merge_access_levels": [{"access_level": 40, "access_level_description": "Maintainers"}],
        "allow_force_push": False,
        "code_owner_approval_required": False,
    }
    api.approvals[REPO] = {"approvals_before_merge": 1, "reset_approvals_on_push": True}
    api.approval_rules[REPO] = [
        {"id": 1, "name": "cab", "rule_type": "regular", "approvals_required": 2,
         "protected_branches": [{"id": 1, "name": "main"}]},
        {"id": 2, "name": "release", "rule_type": "regular", "approvals_required": 5,
         "protected_branches": [{"id": 2, "name": "release"}]},
    ]  # fmt: skip
    api.pipeline_must_succeed.add(REPO)
    rules = gitlab.protection(REPO, "main")
    assert (rules.protected, rules.required_approvals, rules.dismisses_stale_approvals) == (
        True,
        2,
        True,
    )
    assert not rules.admins_bypass and rules.gaps(status_context="codefactory/gate") == []
    assert {s.who for s in api.requests if "/approval" in s.path} == {"app"}


@pytest.mark.usefixtures("bwrap_available")
def test_a_packaged_run_is_pushed_opened_as_a_draft_under_its_sponsor_and_given_its_status(
    tmp_path: Path,
    uv_cache: Path,
    forge: tuple[GitHttpStandin, GitLabStandin],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    git_host, api = forge
    factory, repo = publishing_factory(
        tmp_path, uv_cache, monkeypatch, git_host, repository=REPO, binding=f"gitlab:{REPO}",
        app_token=APP_TOKEN,
        forge={"type": "gitlab", "base_url": api.url, "user_tokens": {"priya.shah": USER_TOKEN}},
    )  # fmt: skip
    run = accept_ticket(factory, payload=TICKET.read_bytes(), repo=repo)
    assert run.state is RunState.IN_REVIEW, run.reason
    assert run.sponsor == "priya.shah"

    assert git_host.head(REPO, run.branch) == run.head_commit  # the packaged commit
    assert git_host.argv_leaks == []  # the push credential was on no command line
    assert "-----BEGIN SSH SIGNATURE-----" in git(
        git_host.root / f"{REPO}.git", "cat-file", "commit", run.head_commit
    )
    (mr,) = api.merge_requests
    assert mr.opened_by == "root" and mr.title.startswith("Draft: SVC-102")
    assert mr.source_branch == run.branch and mr.target_branch == "main"
    package = Path(run.package_dir)
    risk = json.loads((package / "risk.json").read_text())
    assert f"**{risk['level']}**" in mr.description and "## Rollback plan" in mr.description
    assert f"Change package for run {run.id}" in mr.description
    (status,) = api.statuses
    assert (status.sha, status.state, status.set_by) == (run.head_commit, "success", "app")

    events = {e.name: e.data for e in factory.store.audit_events(run.id)}
    assert events["forge-branch-pushed"]["commit"] == run.head_commit
    opened = events["pull-request-opened"]
    assert (opened["number"], opened["author"], opened["repository"]) == ("1", "root", REPO)
    assert events["commit-status-set"]["state"] == "success"
    assert "code-scanning-uploaded" not in events  # GitLab's REST API takes no SARIF
    assert "forge-publish-failed" not in events

    unopened_without_a_token(factory, repo)
    assert len(api.merge_requests) == 1
