"""BitbucketHost against the Bitbucket Cloud and Data Center stand-ins on loopback."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from codefactory.review.forges.bitbucket import BitbucketHost
from codefactory.review.forges.confirm import approval_problem
from codefactory.review.forges.errors import (
    ForgeApiError,
    ForgeInvalid,
    ForgeNotFound,
    ForgeRateLimited,
    ForgeUnauthorized,
    ForgeUnavailable,
)
from codefactory.review.forges.push import push_branch
from codefactory.review.forges.settings import ForgeSettings
from codefactory.review.port import CommitVerdict, ConfirmedApproval, RequestDraft
from tests.forge_standins.bitbucket import (
    APP_TOKEN,
    FACTORY,
    SPONSOR,
    SPONSOR_TOKEN,
    BitbucketCloudStandin,
    BitbucketDataCenterStandin,
    build_condition,
    condition,
    permission,
    restriction,
)
from tests.forge_standins.common import NAMED_ERRORS, approval_on_main
from tests.forge_standins.git_http import GitHttpStandin, git
from tests.forge_standins.recording import running

COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b"
BODY = "## Summary\nBump urllib3 to 2.2.2.\n\n## Risk\nlow\n\n## Rollback\nRevert the commit."
GATE = "codefactory/gate"


@dataclass
class Bitbucket:
    """One flavour's stand-in, the repository's name there, and a host bound to it."""

    standin: BitbucketCloudStandin | BitbucketDataCenterStandin
    repository: str
    flavour: str

    def host(self, **extra: str) -> BitbucketHost:
        if self.flavour == "cloud":
            settings = ForgeSettings(
                type="bitbucket",
                base_url=self.standin.base_url,
                api_url=f"{self.standin.base_url}/2.0",
                max_retries=2,
                **extra,  # type: ignore[arg-type]
            )
        else:
            settings = ForgeSettings(
                type="bitbucket",
                bitbucket_flavour="data-center",
                base_url=self.standin.base_url,
                max_retries=2,
                **extra,  # type: ignore[arg-type]
            )
        return BitbucketHost(settings, app_token=APP_TOKEN)

    def draft(self, body: str = BODY) -> RequestDraft:
        return RequestDraft(
            repository=self.repository,
            branch="factory/run-42",
            base_branch="main",
            commit=COMMIT,
            title="Bump urllib3 (run-42)",
            body=body,
        )

    def protect(self, *, approvals: int, gate: bool) -> None:
        """Protect `main` the way each flavour documents it."""
        standin = self.standin
        if isinstance(standin, BitbucketCloudStandin):
            standin.restrictions = [
                restriction("push"),
                restriction("force"),
                restriction("require_approvals_to_merge", value=approvals),
                restriction("reset_pullrequest_approvals_on_change"),
                restriction("enforce_merge_checks"),
            ] + ([restriction("require_passing_builds_to_merge", value=1)] if gate else [])
        else:
            standin.restrictions = [
                permission("pull-request-only", "refs/heads/main"),
                permission("fast-forward-only", "refs/heads/main"),
            ]
            standin.pull_request_settings.update(
                requiredApprovers=approvals,
                requiredSuccessfulBuilds=1 if gate else 0,
                unapproveOnUpdate=True,
            )


@pytest.fixture(params=["cloud", "data_center"])
def bitbucket(request: pytest.FixtureRequest) -> Bitbucket:
    """Each flavour in turn."""
    found: Bitbucket = request.getfixturevalue(request.param)
    return found


@pytest.fixture
def cloud() -> Iterator[Bitbucket]:
    standin = BitbucketCloudStandin()
    for _started in running(standin):
        yield Bitbucket(standin, f"{standin.workspace}/{standin.repository}", "cloud")


@pytest.fixture
def data_center() -> Iterator[Bitbucket]:
    standin = BitbucketDataCenterStandin()
    for _started in running(standin):
        yield Bitbucket(standin, f"{standin.project}/{standin.repository}", "data-center")


def test_open_request_is_a_draft_under_the_sponsors_token_and_never_duplicated(
    bitbucket: Bitbucket,
) -> None:
    host = bitbucket.host()
    opened = host.open_request(bitbucket.draft(), user_token=SPONSOR_TOKEN)
    again = host.open_request(bitbucket.draft(), user_token=SPONSOR_TOKEN)

    assert again == opened
    assert opened.number == "1" and opened.author == SPONSOR
    assert opened.url.startswith(bitbucket.standin.base_url + "/")
    assert opened.url.endswith("/pull-requests/1")
    [pull] = bitbucket.standin.pulls
    assert bitbucket.standin.summary(pull) == {
        "source": "factory/run-42",
        "target": "main",
        "draft": True,
        "description": BODY,
        "author": SPONSOR,
    }
    assert ("open request", SPONSOR) in bitbucket.standin.actions
    assert {who for _, who in bitbucket.standin.actions} == {SPONSOR}
    [post] = [r for r in bitbucket.standin.requests if r.method == "POST"]
    assert post.headers["authorization"] == f"Bearer {SPONSOR_TOKEN}"


def test_a_request_the_search_missed_is_not_opened_twice(bitbucket: Bitbucket) -> None:
    """The search lags: Data Center answers the POST 409 DuplicatePullRequestException and
    the open request is read again; Cloud answers the POST with the open request."""
    host = bitbucket.host()
    first = host.open_request(bitbucket.draft(), user_token=SPONSOR_TOKEN)
    bitbucket.standin.stale_searches = 1

    assert host.open_request(bitbucket.draft(), user_token=SPONSOR_TOKEN) == first
    assert len(bitbucket.standin.pulls) == 1
    search = "/pullrequests" if bitbucket.flavour == "cloud" else "/pull-requests"
    assert len(bitbucket.standin.requests_to("POST", search)) == 2


def test_set_status_goes_under_the_app_token(bitbucket: Bitbucket) -> None:
    host = bitbucket.host()
    host.set_status(
        bitbucket.repository,
        COMMIT,
        CommitVerdict("failure", "2 findings", "https://cf.example/r/42"),
    )
    host.set_status(bitbucket.repository, COMMIT, CommitVerdict("pending", "running"))

    standin = bitbucket.standin
    statuses = (
        list(standin.statuses.values()) if isinstance(standin.statuses, dict) else standin.statuses
    )
    states = [s["state"] for s in statuses]
    assert states == (["INPROGRESS"] if bitbucket.flavour == "cloud" else ["FAILED", "INPROGRESS"])
    last = statuses[-1]
    assert last["key"] == GATE and last["commit"] == COMMIT and last["set_by"] == FACTORY
    assert last["url"].endswith(f"/commits/{COMMIT}")  # no link given: the commit's page
    assert standin.actions == [("set status", FACTORY), ("set status", FACTORY)]
    if bitbucket.flavour == "data-center":
        assert standin.requests[0].path == f"/rest/build-status/1.0/commits/{COMMIT}"


def test_protection_with_two_approvals_and_the_gate_required_has_no_gaps(
    bitbucket: Bitbucket,
) -> None:
    bitbucket.protect(approvals=2, gate=True)

    found = bitbucket.host().protection(bitbucket.repository, "main")

    assert found.protected and found.required_approvals == 2
    assert found.dismisses_stale_approvals and not found.admins_bypass
    assert found.required_checks == (GATE,)
    assert found.gaps(status_context=GATE) == []
    assert {who for _, who in bitbucket.standin.actions} == {FACTORY}


def test_an_unprotected_branch_is_a_gap(bitbucket: Bitbucket) -> None:
    bitbucket.protect(approvals=2, gate=True)
    found = bitbucket.host().protection(bitbucket.repository, "release/1.0")

    assert found.gaps(status_context=GATE) == [
        "branch release/1.0 is not protected: anyone with write access merges"
    ]


def test_weak_protection_reads_as_gaps(bitbucket: Bitbucket) -> None:
    standin = bitbucket.standin
    if isinstance(standin, BitbucketCloudStandin):
        # Merge checks that are not enforced (no Premium enforce_merge_checks) bind nobody.
        standin.restrictions = [
            restriction("push", "ma*", users=[{"nickname": "admin"}]),
            restriction("require_approvals_to_merge", value=2),
            restriction("require_passing_builds_to_merge", value=1),
        ]
    else:
        standin.restrictions = [
            permission("pull-request-only", "ma*", "PATTERN", groups=["release-managers"])
        ]
        standin.conditions = [condition("refs/heads/develop", 3)]
    found = bitbucket.host().protection(bitbucket.repository, "main")

    assert found.protected
    assert found.gaps(status_context=GATE) == [
        "no approving review is required",
        "an approval survives a later push (stale approvals are not dismissed)",
        "administrators may merge without the rules",
        "the gate's verdict (codefactory/gate) is not a required check",
    ]


def test_cloud_reads_every_page_and_the_branching_model(cloud: Bitbucket) -> None:
    assert isinstance(cloud.standin, BitbucketCloudStandin)
    cloud.standin.branching_model = {"production": {"branch": {"name": "main"}}}
    cloud.standin.restrictions = [restriction("delete", "x")] * 120 + [
        restriction("push", branch_match_kind="branching_model", branch_type="production"),
    ]
    assert cloud.host().protection(cloud.repository, "main").protected
    assert not cloud.host().protection(cloud.repository, "develop").protected
    assert len(cloud.standin.requests_to("GET", "/branch-restrictions")) == 4
    assert len(cloud.standin.requests_to("GET", "/branching-model")) == 2


def test_data_center_reads_every_page(data_center: Bitbucket) -> None:
    assert isinstance(data_center.standin, BitbucketDataCenterStandin)
    data_center.standin.restrictions = [permission("read-only", "refs/heads/x")] * 150
    data_center.standin.conditions = [condition("refs/heads/main", 2, "BRANCH")]
    found = data_center.host().protection(data_center.repository, "main")
    assert not found.protected and found.required_approvals == 2
    assert len(data_center.standin.requests_to("GET", "/restrictions")) == 2


def test_data_center_required_builds_name_the_gate(data_center: Bitbucket) -> None:
    bitbucket = data_center
    standin = bitbucket.standin
    assert isinstance(standin, BitbucketDataCenterStandin)
    standin.restrictions = [permission("pull-request-only", "refs/heads/main")]
    standin.conditions = [condition("refs/heads/main", 2)]
    standin.pull_request_settings["unapproveOnUpdate"] = True
    host = bitbucket.host()
    # No required builds merge check (404): the gate is not required.
    assert host.protection(bitbucket.repository, "main").gaps(status_context=GATE) == [
        "the gate's verdict (codefactory/gate) is not a required check"
    ]
    standin.build_conditions = [
        build_condition("refs/heads/main", [GATE, "ci"]),
        build_condition("refs/heads/main", ["lint"], exempt="factory/*"),
    ]
    found = host.protection(bitbucket.repository, "main")
    assert found.required_checks == (GATE, "ci")
    assert found.gaps(status_context=GATE) == []


@pytest.mark.parametrize(("status", "named"), NAMED_ERRORS)
def test_each_error_status_is_its_named_error(
    bitbucket: Bitbucket, status: int, named: type[ForgeApiError]
) -> None:
    bitbucket.standin.fail_next(status)
    with pytest.raises(named) as raised:
        bitbucket.host().set_status(bitbucket.repository, COMMIT, CommitVerdict("success", "ok"))
    assert raised.value.status == status and raised.value.forge == "bitbucket"
    assert raised.value.vendor_message.startswith(("The ", "Authentication", "Internal", "Rate"))


def test_a_wrong_token_is_unauthorized(bitbucket: Bitbucket) -> None:
    with pytest.raises(ForgeUnauthorized):
        bitbucket.host().open_request(bitbucket.draft(), user_token="revoked-token")
    assert bitbucket.standin.pulls == []
    assert len(bitbucket.standin.requests) == 1  # a 401 is not retried


def test_the_standin_refuses_what_the_vendor_refuses(bitbucket: Bitbucket) -> None:
    """The stand-in's checks are live: an unknown field and a missing required field are
    refused in the vendor's own error shape, and nothing is recorded."""
    auth = {"Authorization": f"Bearer {SPONSOR_TOKEN}"}
    base = bitbucket.standin.base_url
    if bitbucket.flavour == "cloud":
        pulls = f"{base}/2.0/repositories/acme-bank/payments-api/pullrequests"
        good = {"title": "t", "source": {"branch": {"name": "a"}}}
        status = f"{base}/2.0/repositories/acme-bank/payments-api/commit/{COMMIT}/statuses/build"
    else:
        ref = {"repository": {"slug": "payments-api", "project": {"key": "PAY"}}}
        pulls = f"{base}/rest/api/1.0/projects/PAY/repos/payments-api/pull-requests"
        good = {
            "title": "t",
            "fromRef": {"id": "refs/heads/a", **ref},
            "toRef": {"id": "refs/heads/main", **ref},
        }
        status = f"{base}/rest/build-status/1.0/commits/{COMMIT}"
    unknown = httpx.post(pulls, json={**good, "isDraft": True}, headers=auth)
    no_url = httpx.post(status, json={"key": GATE, "state": "SUCCESSFUL"}, headers=auth)

    for refused in (unknown, no_url):
        assert refused.status_code == 400
        if bitbucket.flavour == "cloud":
            assert refused.json()["type"] == "error"
            assert set(refused.json()["error"]) <= {"message", "fields"}
        else:
            [error] = refused.json()["errors"]
            assert set(error) == {"context", "message", "exceptionName"}
    assert "isDraft" in unknown.text and "url" in no_url.text
    assert bitbucket.standin.pulls == [] and not bitbucket.standin.statuses


def test_429_is_retried_after_retry_after(bitbucket: Bitbucket) -> None:
    bitbucket.standin.fail_next(429, retry_after="1")
    started = time.monotonic()
    bitbucket.host().set_status(bitbucket.repository, COMMIT, CommitVerdict("success", "ok"))

    assert time.monotonic() - started >= 1.0
    assert len([r for r in bitbucket.standin.requests if r.method == "POST"]) == 2
    assert bitbucket.standin.actions == [("set status", FACTORY)]


def test_a_rate_limit_longer_than_the_cap_is_not_waited_for(bitbucket: Bitbucket) -> None:
    bitbucket.standin.fail_next(429, retry_after="3600")
    with pytest.raises(ForgeRateLimited) as raised:
        bitbucket.host().protection(bitbucket.repository, "main")
    assert raised.value.retry_after_s == 3600


@pytest.mark.parametrize("status", [502, 503])
def test_a_post_5xx_is_not_retried(bitbucket: Bitbucket, status: int) -> None:
    bitbucket.standin.fail_next(status)
    with pytest.raises(ForgeUnavailable):
        bitbucket.host().set_status(bitbucket.repository, COMMIT, CommitVerdict("success", "ok"))
    assert len(bitbucket.standin.requests) == 1
    assert bitbucket.standin.actions == []


def test_bad_input_is_refused_before_any_request(bitbucket: Bitbucket) -> None:
    host = bitbucket.host()
    with pytest.raises(ForgeInvalid, match="no verdict state"):
        host.set_status(bitbucket.repository, COMMIT, CommitVerdict("green", "ok"))
    with pytest.raises(ForgeInvalid, match="not owner/repo"):
        host.protection("a/b/c", "main")
    assert bitbucket.standin.requests == []


def test_upload_sarif_sends_nothing(bitbucket: Bitbucket) -> None:
    sarif = b'{"version": "2.1.0", "runs": []}'
    host = bitbucket.host()
    assert (
        host.upload_sarif(bitbucket.repository, commit=COMMIT, ref="refs/heads/x", sarif=sarif)
        is None
    )
    assert bitbucket.standin.requests == []


def test_remote_and_push_credentials(bitbucket: Bitbucket) -> None:
    host = bitbucket.host()
    base = bitbucket.standin.base_url
    assert host.kind == "bitbucket"
    if bitbucket.flavour == "cloud":
        assert host.remote_url(bitbucket.repository) == f"{base}/acme-bank/payments-api.git"
        pair = base64.b64encode(f"x-token-auth:{APP_TOKEN}".encode()).decode()
        assert host.push_header() == f"Basic {pair}"
        default = BitbucketHost(ForgeSettings(type="bitbucket"), app_token=APP_TOKEN)
        assert default.remote_url("w/r") == "https://bitbucket.org/w/r.git"
    else:
        assert host.remote_url(bitbucket.repository) == f"{base}/scm/PAY/payments-api.git"
        assert host.push_header() == f"Bearer {APP_TOKEN}"
    assert (
        bitbucket.host(git_url="https://git.example")
        .remote_url("a/b")
        .startswith("https://git.example/")
    )


def test_git_pushes_to_the_remote_with_the_app_tokens_header(
    bitbucket: Bitbucket, tmp_path: Path
) -> None:
    """Real git, through the factory's push, reaches the remote this host names with the
    header this host gives: Cloud `<base>/{workspace}/{repo}.git` (x-token-auth), Data
    Center `<base>/scm/{project}/{repo}.git` (Bearer)."""
    git_host = GitHttpStandin(tmp_path / "git", authorization=bitbucket.host().push_header())
    try:
        host = bitbucket.host(git_url=git_host.url)
        remote = host.remote_url(bitbucket.repository)
        served = remote.removeprefix(git_host.url + "/").removesuffix(".git")
        source = tmp_path / "source"
        source.mkdir()
        git(source, "init", "-q", "-b", "main")
        (source / "app.py").write_text("print('hi')\n")
        git(source, "add", "app.py")
        git(source, "commit", "-q", "-m", "base")
        git_host.create(served, seed=source)
        bare = tmp_path / "local.git"
        git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
        commit = git(bare, "rev-parse", "refs/heads/main")

        pushed = push_branch(
            forge="bitbucket",
            git_dir=bare,
            remote_url=remote,
            branch="factory/run-42",
            commit=commit,
            auth_header=host.push_header(),
        )

        assert pushed.created and git_host.head(served, "factory/run-42") == commit
        assert served == (
            "acme-bank/payments-api" if bitbucket.flavour == "cloud" else "scm/PAY/payments-api"
        )
        assert {r.authorization for r in git_host.requests} == {host.push_header()}
    finally:
        git_host.stop()


# -- confirming an approval and a token's account ------------------------------------------


def _opened(bitbucket: Bitbucket) -> BitbucketHost:
    bitbucket.standin.heads["factory/run-42"] = COMMIT
    host = bitbucket.host()
    host.open_request(bitbucket.draft(), user_token=SPONSOR_TOKEN)
    return host


def _reviewer(bitbucket: Bitbucket, name: str) -> str:
    """How each flavour's webhooks name a reviewer: Cloud `account_id`, DC `name`."""
    standin = bitbucket.standin
    if isinstance(standin, BitbucketCloudStandin):
        return str(standin.user(name)["account_id"])
    return name


def test_an_approval_is_confirmed_from_the_request_with_the_app_token(
    bitbucket: Bitbucket,
) -> None:
    host = _opened(bitbucket)
    omar = _reviewer(bitbucket, "omar")

    def confirm(login: str = omar) -> ConfirmedApproval:
        return host.confirm_approval(
            bitbucket.repository, request="1", reviewer_login=login, review_id=""
        )

    assert not confirm().approved  # the webhook said so; the forge does not
    bitbucket.standin.approve(1, "mallory")
    assert not confirm().approved
    bitbucket.standin.approve(1, "omar")
    confirmed = confirm()
    # Cloud's 12 digits resolved to the full id
    assert confirmed == approval_on_main(
        COMMIT, bitbucket.repository, _reviewer(bitbucket, SPONSOR)
    )
    reads = [a for a in bitbucket.standin.actions if a[0] in ("read request", "read commit")]
    assert reads and {who for _, who in reads} == {FACTORY}
    assert (
        approval_problem(
            confirmed,
            expected_repository=bitbucket.repository,
            base_branch="main",
            packaged_commit=COMMIT,
            reviewer_login=omar,
        )
        == ""
    )
    assert "cannot approve" in approval_problem(  # the sponsor approving their own request
        replace(confirmed, author_login=omar),
        expected_repository=bitbucket.repository,
        base_branch="main",
        packaged_commit=COMMIT,
        reviewer_login=omar,
    )
    with pytest.raises(ForgeNotFound):
        host.confirm_approval(bitbucket.repository, request="5", reviewer_login=omar, review_id="")
    with pytest.raises(ForgeInvalid):
        host.confirm_approval(bitbucket.repository, request="x", reviewer_login=omar, review_id="")


def test_a_withdrawn_or_needs_work_review_is_no_approval(bitbucket: Bitbucket) -> None:
    host = _opened(bitbucket)
    standin = bitbucket.standin
    if isinstance(standin, BitbucketCloudStandin):
        standin.approve(1, "omar", approved=False)
    else:
        standin.approve(1, "omar", status="NEEDS_WORK")
    seen = host.confirm_approval(
        bitbucket.repository, request="1", reviewer_login=_reviewer(bitbucket, "omar"),
        review_id="",
    )  # fmt: skip
    assert not seen.approved


def test_a_cloud_request_from_a_fork_keeps_the_short_hash_it_cannot_resolve(
    cloud: Bitbucket,
) -> None:
    host = _opened(cloud)
    standin = cloud.standin
    assert isinstance(standin, BitbucketCloudStandin)
    standin.approve(1, "omar")
    standin.pulls[0]["source"]["repository"] = standin.repository_json("mallory/payments-api")
    seen = host.confirm_approval(
        cloud.repository, request="1", reviewer_login=_reviewer(cloud, "omar"), review_id=""
    )
    assert seen.head_repository == "mallory/payments-api" and seen.commit == COMMIT[:12]
    said = approval_problem(
        seen,
        expected_repository=cloud.repository,
        base_branch="main",
        packaged_commit=COMMIT,
        reviewer_login=_reviewer(cloud, "omar"),
    )
    assert "not the packaged commit" in said


def test_a_data_center_request_from_another_repository_is_a_fork(data_center: Bitbucket) -> None:
    host = _opened(data_center)
    standin = data_center.standin
    standin.approve(1, "omar")
    standin.pulls[0]["fromRef"]["repository"] = {
        "slug": "payments-api",
        "project": {"key": "~MALLORY"},
    }
    seen = host.confirm_approval(
        data_center.repository, request="1", reviewer_login="omar", review_id=""
    )
    assert seen.head_repository == "~MALLORY/payments-api"
    assert "from a fork" in approval_problem(
        seen,
        expected_repository=data_center.repository,
        base_branch="main",
        packaged_commit=COMMIT,
        reviewer_login="omar",
    )


def test_a_token_names_its_account(bitbucket: Bitbucket) -> None:
    host = bitbucket.host()
    login = host.user_login(SPONSOR_TOKEN)
    assert login == _reviewer(bitbucket, SPONSOR)
    opened = host.open_request(bitbucket.draft(), user_token=SPONSOR_TOKEN)
    assert (opened.author_id or opened.author) == login  # comparable, as the port says
    with pytest.raises(ForgeUnauthorized):
        host.user_login("not-a-token")
