"""AzureDevOpsHost against the Azure DevOps stand-in on loopback (REST API 7.1)."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from codefactory.review.forges.azure_devops import (
    DESCRIPTION_MAX,
    TRUNCATED_NOTE,
    AzureDevOpsHost,
    authorization,
    ref_token,
)
from codefactory.review.forges.confirm import approval_problem
from codefactory.review.forges.errors import (
    ForgeApiError,
    ForgeInvalid,
    ForgeNotFound,
    ForgeRateLimited,
    ForgeUnauthorized,
    ForgeUnavailable,
)
from codefactory.review.forges.settings import ForgeSettings
from codefactory.review.port import CommitVerdict, ConfirmedApproval, RequestDraft
from tests.forge_standins.azure_devops import (
    APP_PAT,
    BUILD,
    FACTORY,
    GIT_REPOSITORIES_NAMESPACE,
    MINIMUM_REVIEWERS,
    PROJECT,
    PROJECT_ADMINISTRATORS,
    REPOSITORY,
    SPONSOR,
    SPONSOR_PAT,
    STATUS,
    AzureDevOpsStandin,
    acl,
    azure_devops_standin,
    policy,
    scope,
)
from tests.forge_standins.common import NAMED_ERRORS, approval_on_main

__all__ = ["azure_devops_standin"]

REPO = f"{PROJECT}/{REPOSITORY}"
COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b"
BODY = "## Summary\nBump urllib3 to 2.2.2.\n\n## Risk\nlow\n\n## Rollback\nRevert the commit."


def _host(standin: AzureDevOpsStandin, git_url: str = "") -> AzureDevOpsHost:
    settings = ForgeSettings(
        type="azure-devops", base_url=standin.org_url, git_url=git_url, max_retries=2
    )
    return AzureDevOpsHost(settings, app_token=APP_PAT)


def _draft(body: str = BODY) -> RequestDraft:
    return RequestDraft(
        repository=REPO,
        branch="factory/run-42",
        base_branch="main",
        commit=COMMIT,
        title="Bump urllib3 (run-42)",
        body=body,
    )


def test_open_request_is_a_draft_under_the_sponsors_token_and_never_duplicated(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    host = _host(azure_devops_standin)
    opened = host.open_request(_draft(), user_token=SPONSOR_PAT)
    again = host.open_request(_draft(), user_token=SPONSOR_PAT)

    assert again == opened
    assert opened.number == "1"
    assert opened.author == SPONSOR
    assert opened.url == f"{azure_devops_standin.org_url}/{PROJECT}/_git/{REPOSITORY}/pullrequest/1"
    [pull] = azure_devops_standin.pulls
    assert pull["isDraft"] is True
    assert pull["description"] == BODY
    assert pull["sourceRefName"] == "refs/heads/factory/run-42"
    assert pull["targetRefName"] == "refs/heads/main"
    assert ("open request", SPONSOR) in azure_devops_standin.actions
    assert all(who == SPONSOR for _, who in azure_devops_standin.actions)
    [post] = azure_devops_standin.requests_to("POST", "/pullrequests")
    expected = "Basic " + base64.b64encode(f":{SPONSOR_PAT}".encode()).decode()
    assert post.headers["authorization"] == expected


def test_a_request_the_search_missed_is_found_after_tf401179(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    host = _host(azure_devops_standin)
    first = host.open_request(_draft(), user_token=SPONSOR_PAT)
    azure_devops_standin.stale_searches = 1

    assert host.open_request(_draft(), user_token=SPONSOR_PAT) == first
    assert len(azure_devops_standin.pulls) == 1
    assert len(azure_devops_standin.requests_to("POST", "/pullrequests")) == 2


def test_a_long_description_is_truncated_with_a_note(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    _host(azure_devops_standin).open_request(_draft("x" * 9000), user_token=SPONSOR_PAT)

    [pull] = azure_devops_standin.pulls
    assert len(pull["description"]) == DESCRIPTION_MAX
    assert pull["description"].endswith(TRUNCATED_NOTE)


def test_a_description_is_cut_at_a_line_end_so_no_code_span_is_left_open(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    line = "- `` touches `src/x` ![pixel](https://evil.example/p.png) @team ``\n"
    body = line * (DESCRIPTION_MAX // len(line) + 5)
    _host(azure_devops_standin).open_request(_draft(body), user_token=SPONSOR_PAT)

    [pull] = azure_devops_standin.pulls
    kept = pull["description"].removesuffix(TRUNCATED_NOTE)
    assert len(pull["description"]) <= DESCRIPTION_MAX and kept.endswith("``")
    assert all(each + "\n" == line for each in kept.split("\n"))  # only whole lines


def test_set_status_goes_under_the_app_token(azure_devops_standin: AzureDevOpsStandin) -> None:
    host = _host(azure_devops_standin)
    host.set_status(REPO, COMMIT, CommitVerdict("failure", "2 findings", "https://cf.example/r/42"))
    host.set_status(REPO, COMMIT, CommitVerdict("success", "gate passed"))

    first, second = azure_devops_standin.statuses
    assert first["state"] == "failed"
    assert first["context"] == {"genre": "codefactory", "name": "gate"}
    assert first["targetUrl"] == "https://cf.example/r/42"
    assert first["commitId"] == COMMIT
    assert second["state"] == "succeeded"
    assert azure_devops_standin.actions == [("set status", FACTORY), ("set status", FACTORY)]


def test_protection_with_two_reviewers_and_the_gate_required_has_no_gaps(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    repo_id = azure_devops_standin.repository_id()
    main = [scope(repo_id, "refs/heads/main")]
    azure_devops_standin.policies = [
        policy(
            MINIMUM_REVIEWERS,
            {
                "minimumApproverCount": 2,
                "creatorVoteCounts": False,
                "resetOnSourcePush": True,
                "scope": main,
            },
        ),
        policy(STATUS, {"statusGenre": "codefactory", "statusName": "gate", "scope": main}),
        policy(BUILD, {"buildDefinitionId": 7, "displayName": "ci", "scope": main}),
        policy(STATUS, {"statusName": "other", "scope": [scope("another-repo", None)]}),
    ]

    found = _host(azure_devops_standin).protection(REPO, "main")

    assert found.protected and found.required_approvals == 2
    assert found.dismisses_stale_approvals
    assert found.required_checks == ("codefactory/gate", "ci")
    assert found.gaps(status_context="codefactory/gate") == []


def test_protection_reads_gaps_from_weak_or_absent_policies(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    repo_id = azure_devops_standin.repository_id()
    host = _host(azure_devops_standin)
    assert host.protection(REPO, "main").gaps(status_context="codefactory/gate") == [
        "branch main is not protected: anyone with write access merges"
    ]

    azure_devops_standin.policies = [
        policy(
            MINIMUM_REVIEWERS,
            {
                "minimumApproverCount": 1,
                "creatorVoteCounts": True,
                "scope": [scope(None, "refs/heads/")],
            },
        ),
        policy(
            STATUS,
            {"statusGenre": "codefactory", "statusName": "gate", "scope": [scope(repo_id, None)]},
            blocking=False,
        ),
    ]
    azure_devops_standin.policies[0]["settings"]["scope"][0]["matchKind"] = "Prefix"
    found = host.protection(REPO, "main")
    assert found.protected and found.required_approvals == 0
    assert found.gaps(status_context="codefactory/gate") == [
        "no approving review is required",
        "an approval survives a later push (stale approvals are not dismissed)",
        "the gate's verdict (codefactory/gate) is not a required check",
    ]


def _protect_main(standin: AzureDevOpsStandin) -> None:
    main = [scope(standin.repository_id(), "refs/heads/main")]
    standin.policies = [
        policy(
            MINIMUM_REVIEWERS, {"minimumApproverCount": 2, "resetOnSourcePush": True, "scope": main}
        ),
        policy(STATUS, {"statusGenre": "codefactory", "statusName": "gate", "scope": main}),
    ]


def test_a_bypass_permission_on_the_branch_or_above_is_an_administrator_bypass(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    _protect_main(azure_devops_standin)
    project_id = azure_devops_standin.repositories[(PROJECT, REPOSITORY)]["project"]["id"]
    repo = f"repoV2/{project_id}/{azure_devops_standin.repository_id()}"
    host = _host(azure_devops_standin)

    azure_devops_standin.acls = [acl(repo, PROJECT_ADMINISTRATORS, allow=32768 | 4)]
    assert host.protection(REPO, "main").gaps(status_context="codefactory/gate") == [
        "administrators may merge without the rules"
    ]
    # Denied on the branch itself: the nearer entry decides.
    branch = f"{repo}/refs/heads/6d00610069006e00"
    azure_devops_standin.acls.append(acl(branch, PROJECT_ADMINISTRATORS, deny=32768))
    assert not host.protection(REPO, "main").admins_bypass
    # Allowed for every repository of the organisation ("Bypass policies when pushing").
    azure_devops_standin.acls.append(acl("repoV2", "vssgp.build-service", allow=128))
    assert host.bypassers(project_id, azure_devops_standin.repository_id(), "refs/heads/main") == [
        "vssgp.build-service"
    ]
    # Another branch's entry and a bit that is no bypass count for nothing.
    azure_devops_standin.acls = [
        acl(f"{repo}/{ref_token('refs/heads/release/1.0')}", PROJECT_ADMINISTRATORS, allow=32768),
        acl(repo, PROJECT_ADMINISTRATORS, allow=8),
    ]
    assert not host.protection(REPO, "main").admins_bypass
    assert (
        ref_token("refs/heads/release/1.0")
        == "refs/heads/72006500" + "6c006500610073006500/" + "31002e003000"
    )
    [query] = azure_devops_standin.requests_to(
        "GET", f"/accesscontrollists/{GIT_REPOSITORIES_NAMESPACE}"
    )[-1:]
    assert query.query["recurse"] == ["true"] and query.query["token"] == [repo]
    # A server without the security REST area (404): no entries to read, no failure.
    azure_devops_standin.security_api = False
    azure_devops_standin.acls = [acl(repo, PROJECT_ADMINISTRATORS, allow=32768)]
    assert not host.protection(REPO, "main").admins_bypass


@pytest.mark.parametrize(("status", "named"), NAMED_ERRORS)
def test_each_error_status_is_its_named_error(
    azure_devops_standin: AzureDevOpsStandin, status: int, named: type[ForgeApiError]
) -> None:
    azure_devops_standin.fail_next(status)
    with pytest.raises(named) as raised:
        _host(azure_devops_standin).set_status(REPO, COMMIT, CommitVerdict("success", "ok"))
    assert raised.value.status == status
    assert raised.value.forge == "azure-devops"
    assert raised.value.vendor_message  # the vendor's own message, from its error document


def test_a_wrong_token_is_unauthorized_with_the_service_message(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    with pytest.raises(ForgeUnauthorized, match="TF400813"):
        _host(azure_devops_standin).open_request(_draft(), user_token="not-a-known-pat")
    assert azure_devops_standin.pulls == []
    assert len(azure_devops_standin.requests) == 1  # a 401 is not retried


def test_a_missing_repository_is_not_found(azure_devops_standin: AzureDevOpsStandin) -> None:
    with pytest.raises(ForgeNotFound, match="TF401019"):
        _host(azure_devops_standin).protection(f"{PROJECT}/nowhere", "main")


def test_429_is_retried_after_retry_after(azure_devops_standin: AzureDevOpsStandin) -> None:
    azure_devops_standin.fail_next(429, retry_after="1")
    started = time.monotonic()
    _host(azure_devops_standin).set_status(REPO, COMMIT, CommitVerdict("pending", "running"))

    assert time.monotonic() - started >= 1.0
    assert len(azure_devops_standin.requests_to("POST", "/statuses")) == 2
    assert [s["state"] for s in azure_devops_standin.statuses] == ["pending"]


def test_a_rate_limit_longer_than_the_cap_is_not_waited_for(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    azure_devops_standin.fail_next(429, retry_after="3600")
    with pytest.raises(ForgeRateLimited) as raised:
        _host(azure_devops_standin).protection(REPO, "main")
    assert raised.value.retry_after_s == 3600


@pytest.mark.parametrize("status", [502, 503])
def test_a_post_5xx_is_not_retried(azure_devops_standin: AzureDevOpsStandin, status: int) -> None:
    azure_devops_standin.fail_next(status)
    with pytest.raises(ForgeUnavailable):
        _host(azure_devops_standin).set_status(REPO, COMMIT, CommitVerdict("success", "ok"))
    assert len(azure_devops_standin.requests_to("POST", "/statuses")) == 1
    assert azure_devops_standin.statuses == []


def test_a_get_503_is_retried(azure_devops_standin: AzureDevOpsStandin) -> None:
    azure_devops_standin.fail_next(503, retry_after="0")
    assert not _host(azure_devops_standin).protection(REPO, "main").protected
    assert len(azure_devops_standin.requests_to("GET", f"/{REPOSITORY}")) == 2


def test_bad_input_is_refused_before_any_request(azure_devops_standin: AzureDevOpsStandin) -> None:
    host = _host(azure_devops_standin)
    with pytest.raises(ForgeInvalid, match="no verdict state"):
        host.set_status(REPO, COMMIT, CommitVerdict("green", "ok"))
    with pytest.raises(ForgeInvalid, match="not project/repo"):
        host.set_status("payments-api", COMMIT, CommitVerdict("success", "ok"))
    assert azure_devops_standin.requests == []


def test_upload_sarif_sends_nothing(azure_devops_standin: AzureDevOpsStandin) -> None:
    sarif = b'{"version": "2.1.0", "runs": []}'
    assert (
        _host(azure_devops_standin).upload_sarif(
            REPO, commit=COMMIT, ref="refs/heads/x", sarif=sarif
        )
        is None
    )
    assert azure_devops_standin.requests == []


def test_remote_and_credentials(azure_devops_standin: AzureDevOpsStandin) -> None:
    host = _host(azure_devops_standin)
    assert host.kind == "azure-devops"
    assert host.remote_url(REPO) == f"{azure_devops_standin.org_url}/{PROJECT}/_git/{REPOSITORY}"
    assert host.push_header() == "Basic " + base64.b64encode(f":{APP_PAT}".encode()).decode()
    jwt = "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ4In0.c2ln"
    assert authorization(jwt) == f"Bearer {jwt}"
    assert _host(azure_devops_standin, git_url="https://git.example").remote_url(REPO) == (
        f"https://git.example/{PROJECT}/_git/{REPOSITORY}"
    )


def test_the_standin_refuses_what_the_service_refuses(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    """The stand-in's checks are live: an unknown field, a missing api-version and a bad
    state are refused with the service's error document."""
    url = f"{azure_devops_standin.org_url}/{PROJECT}/_apis/git/repositories/{REPOSITORY}"
    auth = {"Authorization": authorization(SPONSOR_PAT)}
    body = {"sourceRefName": "refs/heads/a", "targetRefName": "refs/heads/main", "title": "t"}
    unknown = httpx.post(
        f"{url}/pullrequests?api-version=7.1", json={**body, "draft": True}, headers=auth
    )
    unversioned = httpx.post(f"{url}/pullrequests", json=body, headers=auth)
    bad_state = httpx.post(
        f"{url}/commits/{COMMIT}/statuses?api-version=7.1",
        json={"state": "success", "context": {"name": "gate"}},
        headers=auth,
    )

    assert unknown.status_code == 400 and "draft" in unknown.json()["message"]
    assert unversioned.json()["typeKey"] == "VssVersionNotSpecifiedException"
    assert bad_state.status_code == 400
    assert set(bad_state.json()) == {
        "$id",
        "innerException",
        "message",
        "typeName",
        "typeKey",
        "errorCode",
        "eventId",
    }
    assert azure_devops_standin.pulls == [] and azure_devops_standin.statuses == []


# -- confirming an approval and a token's account ------------------------------------------

REVIEWER = "omar@acme-bank.example"


def _opened(standin: AzureDevOpsStandin) -> AzureDevOpsHost:
    standin.heads["refs/heads/factory/run-42"] = COMMIT
    host = _host(standin)
    host.open_request(_draft(), user_token=SPONSOR_PAT)
    return host


def test_an_approval_is_confirmed_from_the_request_and_its_reviewers_with_the_app_token(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    host = _opened(azure_devops_standin)

    def confirm(login: str = REVIEWER) -> ConfirmedApproval:
        return host.confirm_approval(REPO, request="1", reviewer_login=login, review_id="")

    assert not confirm().approved  # the service hook said so; Azure DevOps does not
    azure_devops_standin.vote(1, REVIEWER, 5)  # approved with suggestions: not counted
    assert not confirm().approved
    azure_devops_standin.vote(1, "team@acme-bank.example", 10, isContainer=True)
    assert not confirm("team@acme-bank.example").approved  # a group's vote is no person's
    azure_devops_standin.vote(1, REVIEWER, 10)
    confirmed = confirm()
    assert confirmed == approval_on_main(COMMIT, REPO, SPONSOR)
    by_id = confirm(azure_devops_standin.pulls[0]["reviewers"][-1]["id"])
    assert by_id.approved
    reads = [a for a in azure_devops_standin.actions if a[0] in ("read request", "read reviewers")]
    assert {who for _, who in reads} == {FACTORY}
    assert (
        approval_problem(
            confirmed,
            expected_repository=REPO,
            base_branch="main",
            packaged_commit=COMMIT,
            reviewer_login=REVIEWER,
        )
        == ""
    )
    with pytest.raises(ForgeNotFound, match="TF401180"):
        host.confirm_approval(REPO, request="7", reviewer_login=REVIEWER, review_id="")
    with pytest.raises(ForgeInvalid):
        host.confirm_approval(REPO, request="-1", reviewer_login=REVIEWER, review_id="")


def test_a_request_from_a_fork_or_into_another_branch_is_confirmed_as_such(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    host = _opened(azure_devops_standin)
    azure_devops_standin.vote(1, REVIEWER)
    pull = azure_devops_standin.pulls[0]
    pull["forkSource"] = {
        "name": "refs/heads/factory/run-42",
        "repository": {"id": "f", "name": "payments-api", "project": {"name": "Mallory"}},
    }
    pull["targetRefName"] = "refs/heads/release"
    pull["lastMergeSourceCommit"]["commitId"] = "e" * 40
    confirmed = host.confirm_approval(REPO, request="1", reviewer_login=REVIEWER, review_id="")
    assert confirmed.head_repository == "Mallory/payments-api"
    assert confirmed.base_branch == "release" and confirmed.commit == "e" * 40

    def problem(seen: ConfirmedApproval) -> str:
        return approval_problem(
            seen,
            expected_repository=REPO,
            base_branch="main",
            packaged_commit=COMMIT,
            reviewer_login=REVIEWER,
        )

    assert "not the packaged commit" in problem(confirmed)
    pull["lastMergeSourceCommit"]["commitId"] = COMMIT
    assert "from a fork" in problem(
        host.confirm_approval(REPO, request="1", reviewer_login=REVIEWER, review_id="")
    )
    del pull["forkSource"]
    assert "into branch release" in problem(
        host.confirm_approval(REPO, request="1", reviewer_login=REVIEWER, review_id="")
    )


def test_a_token_names_its_account_through_the_organisations_connection_data(
    azure_devops_standin: AzureDevOpsStandin,
) -> None:
    host = _host(azure_devops_standin)
    assert host.user_login(SPONSOR_PAT) == SPONSOR
    (read,) = azure_devops_standin.requests_to("GET", "/_apis/connectionData")
    assert read.path == f"/{azure_devops_standin.organization}/_apis/connectionData"
    assert read.query["api-version"] == ["7.1-preview.1"]
    with pytest.raises(ForgeUnauthorized):
        host.user_login("not-a-pat")
