"""The Jira and Confluence connectors against a stand-in Atlassian site on 127.0.0.1:
production client code (`vendor_client`, httpx, real sockets), Atlassian's documented
payloads, every request recorded and asserted."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.context.connectors.confluence import (
    ConfluenceConnector,
    confluence_connector,
)
from codefactory.context.connectors.jira import JiraConnector, jira_connector
from codefactory.context.errors import (
    ContextError,
    MalformedResponse,
    NotFound,
    OutOfScope,
    ResponseTooLarge,
    SourceRateLimited,
    SourceUnauthorized,
    SourceUnavailable,
)
from codefactory.context.port import Scope
from codefactory.context.settings import ContextSettings, SourceSettings
from tests.context_standins.atlassian import (
    _CQL,
    _JQL,
    TOKEN,
    USER,
    AtlassianStandin,
    atlassian_standin_fixture,  # noqa: F401 - the fixture `atlassian_standin`
    unquote_string,
)

HOSTILE_QUERIES = [
    'x" OR project = SECRET OR text ~ "',
    'payments\\" OR project = SECRET OR text ~ \\"',
    'gateway") OR space = SECRET OR (text ~ "',
    "timeout\n) ORDER BY created --\r\x00",
    "trailing backslash \\",
]
CREDENTIAL_FORMS = (TOKEN, base64.b64encode(f"{USER}:{TOKEN}".encode()).decode())


def jira(
    standin: AtlassianStandin,
    tmp_path: Path,
    projects: tuple[str, ...] = ("PAY", "OPS"),
    timeout_s: float = 5.0,
    max_item_chars: int = 20_000,
) -> JiraConnector:
    client = standin.client("jira", tmp_path, timeout_s=timeout_s)
    return JiraConnector(
        client, Scope(kind="jira-project", values=projects), "confidential", max_item_chars
    )


def confluence(
    standin: AtlassianStandin, tmp_path: Path, spaces: tuple[str, ...] = ("ENG", "OPS")
) -> ConfluenceConnector:
    client = standin.client("confluence", tmp_path)
    return ConfluenceConnector(
        client, Scope(kind="confluence-space", values=spaces), "internal", 20_000
    )


def test_fetch_renders_the_issue_its_comments_and_links(
    atlassian_standin: AtlassianStandin, tmp_path: Path
) -> None:
    item = jira(atlassian_standin, tmp_path).fetch("PAY-7")

    assert (item.source, item.id, item.citation) == ("jira", "PAY-7", "jira:PAY-7")
    assert item.title == "PAY-7: Card payments time out after the gateway upgrade"
    assert item.data_class == "confidential" and not item.truncated
    assert item.uri == f"{atlassian_standin.base_url}/browse/PAY-7"
    text = item.text
    assert text.startswith("PAY-7: Card payments time out after the gateway upgrade\n")
    for expected in (
        "Status: In Progress",
        "Type: Bug",
        "Priority: High",
        "Labels: payments, timeout",
        "fail with `GatewayTimeout` in `payments/retry.py`.",
        "### Steps\n\n1. Pay 120 EUR with a test card\n2. Wait for the retry",
        "Runbook: https://bank.atlassian.net/wiki/spaces/ENG/pages/98765/Payments+runbook",
        "Comment by Maria Lopez at 2026-11-20 09:15:\nCustomer maria.lopez@example.com",
        "Comment by Tom Becker at 2026-11-21 16:02:\n@Maria Lopez reproduced",
        "```bash\nexport AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n",
        "Linked issues:\n- blocks PAY-8: Release the payments hotfix\n- relates to SEC-9",
    ):
        assert expected in text
    assert text.index("Maria Lopez at") < text.index("Tom Becker at")
    # The out-of-scope linked issue is named by its key only, and never fetched.
    assert "Rotate the leaked" not in text
    assert text.rstrip().endswith("- relates to SEC-9")
    # The remote links' Confluence pages are pointers for the loop to follow (each through
    # the governed Confluence connector, which refuses the SECRET space's page).
    assert {"confluence:98765", "confluence:66600"} <= set(item.related)
    assert "jira:PAY-8" in item.related and "jira:SEC-9" not in item.related  # in scope only
    request = atlassian_standin.requests[0]
    assert not any("SEC-9" in r.path for r in atlassian_standin.requests)
    assert (request.method, request.path) == ("GET", "/rest/api/3/issue/PAY-7")
    assert request.param("fields").split(",") == [
        "summary", "description", "status", "issuetype", "priority", "labels",
        "comment", "issuelinks",
    ]  # fmt: skip


def test_credentials_go_in_a_basic_authorization_header(
    atlassian_standin: AtlassianStandin, tmp_path: Path
) -> None:
    jira(atlassian_standin, tmp_path).fetch("PAY-8")

    request = atlassian_standin.requests[0]
    scheme, _, pair = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(pair).decode() == f"{USER}:{TOKEN}"
    assert TOKEN not in request.path and not any(TOKEN in v for v in request.query.values())


def test_a_refused_credential_is_named_without_showing_it(
    atlassian_standin: AtlassianStandin, tmp_path: Path
) -> None:
    connector = jira(atlassian_standin, tmp_path)
    atlassian_standin.token = "the-site-expects-another-token"

    with pytest.raises(SourceUnauthorized) as refused:
        connector.fetch("PAY-7")

    assert refused.value.kind == "unauthorized"
    assert not any(form in str(refused.value) for form in CREDENTIAL_FORMS)


@pytest.mark.parametrize(
    "ref", ["SEC-9", "pay-7", "PAY7", "PAY-7/../../SEC-9", "../rest/api/3/myself", "", "P-1"]
)
def test_a_key_outside_the_scope_is_refused_before_any_request(
    atlassian_standin: AtlassianStandin, tmp_path: Path, ref: str
) -> None:
    connector = jira(atlassian_standin, tmp_path)

    with pytest.raises(OutOfScope):
        connector.fetch(ref)
    with pytest.raises(OutOfScope):
        connector.linked_pages(ref)

    assert atlassian_standin.requests == []


def test_search_sends_the_connector_s_own_jql(
    atlassian_standin: AtlassianStandin, tmp_path: Path
) -> None:
    items = jira(atlassian_standin, tmp_path).search("gateway timeout", limit=5)

    assert [item.id for item in items] == ["PAY-7", "OPS-3"]  # most recently updated first
    assert items[0].text.startswith("PAY-7: Card payments time out after the gateway upgrade")
    assert "Status: In Progress" in items[0].text
    [request] = atlassian_standin.requests
    assert (request.method, request.path) == ("POST", "/rest/api/3/search/jql")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "jql": 'project in ("PAY","OPS") AND text ~ "gateway timeout" ORDER BY updated DESC',
        "fields": ["summary", "status", "description"],
        "maxResults": 5,
    }


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_a_hostile_query_arrives_as_one_jql_string(
    atlassian_standin: AtlassianStandin, tmp_path: Path, query: str
) -> None:
    jira(atlassian_standin, tmp_path).search(query)

    [request] = atlassian_standin.requests
    jql = request.json()["jql"]
    match = _JQL.match(jql)
    assert match is not None, jql  # the site parsed it as the connector's one shape
    assert match.group("projects") == '"PAY","OPS"'
    assert unquote_string(match.group("text")) == " ".join(
        re.sub(r"[\x00-\x1f]", " ", query).split()
    )
    assert not re.search(r"[\x00-\x1f]", jql)


def test_an_empty_query_is_refused_without_a_request(
    atlassian_standin: AtlassianStandin, tmp_path: Path
) -> None:
    with pytest.raises(ContextError, match="empty"):
        jira(atlassian_standin, tmp_path).search(" \n\t\x00 ")
    assert atlassian_standin.requests == []


def test_search_results_outside_the_scope_are_dropped(
    atlassian_standin: AtlassianStandin, tmp_path: Path
) -> None:
    atlassian_standin.answer_outside_scope = True  # a site that ignores the project clause

    items = jira(atlassian_standin, tmp_path, projects=("PAY",)).search("payments")

    answered = atlassian_standin._search_jql(atlassian_standin.requests[0].json())[1]
    assert {issue["key"] for issue in answered["issues"]} >= {"SEC-9", "PAY-7"}
    assert [item.id for item in items] == ["PAY-7", "PAY-8"]
    assert not any("hunter2" in item.text for item in items)


def test_long_issues_are_clipped_and_marked(
    atlassian_standin: AtlassianStandin, tmp_path: Path
) -> None:
    item = jira(atlassian_standin, tmp_path, max_item_chars=200).fetch("PAY-7")

    assert item.truncated
    assert item.text.startswith("PAY-7: Card payments")
    assert "[truncated:" in item.text and len(item.text) < 300


def test_linked_pages_name_the_confluence_pages_of_the_remote_links(
    atlassian_standin: AtlassianStandin, tmp_path: Path
) -> None:
    pages = jira(atlassian_standin, tmp_path).linked_pages("PAY-7")

    assert pages == ["98765", "66600"]  # the status-page link is not a Confluence page
    [request] = atlassian_standin.requests
    assert (request.method, request.path) == ("GET", "/rest/api/3/issue/PAY-7/remotelink")

    wiki = confluence(atlassian_standin, tmp_path)
    assert wiki.fetch("98765").title == "Payments runbook"
    with pytest.raises(OutOfScope) as refused:
        wiki.fetch("66600")  # linked from an in-scope issue, but in the SECRET space
    assert "hunter2" not in str(refused.value) and "Credential" not in str(refused.value)


def test_confluence_fetch_renders_the_storage_format(
    atlassian_standin: AtlassianStandin, tmp_path: Path
) -> None:
    wiki = confluence(atlassian_standin, tmp_path)

    item = wiki.fetch("98765")

    assert (item.source, item.id, item.data_class) == ("confluence", "98765", "internal")
    assert item.uri == f"{atlassian_standin.base_url}/wiki/spaces/ENG/pages/98765/Payments+runbook"
    assert item.text == (
        "Payments runbook\n\n"
        "# Payments runbook\n\n"
        "When card payments time out, check the gateway first. On call: "
        "payments-oncall@example.com.\n\n"
        "## Retry settings\n\n"
        "- timeout: 30 s\n"
        "- attempts: 3\n\n"
        "```python\n"
        "RETRY_TIMEOUT_S = 30\nif elapsed > RETRY_TIMEOUT_S and attempts < 3:\n"
        "    retry(payment)\n"
        "```\n\n"
        "Service | Owner\n"
        "payments-api | Payments team\n\n"
        "See also Gateway upgrade notes."
    )
    spaces, page = atlassian_standin.requests
    assert (spaces.path, spaces.param("keys")) == ("/wiki/api/v2/spaces", "ENG,OPS")
    assert (page.path, page.param("body-format")) == ("/wiki/api/v2/pages/98765", "storage")

    wiki.fetch("55501")
    assert [r.path for r in atlassian_standin.requests].count("/wiki/api/v2/spaces") == 1


@pytest.mark.parametrize("ref", ["../spaces", "98765/../66600", "abc", "", "1e5"])
def test_a_ref_that_is_not_a_page_id_is_refused_before_any_request(
    atlassian_standin: AtlassianStandin, tmp_path: Path, ref: str
) -> None:
    with pytest.raises(OutOfScope):
        confluence(atlassian_standin, tmp_path).fetch(ref)
    assert atlassian_standin.requests == []


def test_confluence_search_sends_the_connector_s_own_cql(
    atlassian_standin: AtlassianStandin, tmp_path: Path
) -> None:
    items = confluence(atlassian_standin, tmp_path).search("gateway timeout", limit=3)

    assert [item.id for item in items] == ["98765", "55501"]
    assert items[1].text.startswith("Incident review: gateway timeouts\n\n")
    assert "@@@hl@@@" not in items[0].text and "gateway" in items[0].text
    [request] = atlassian_standin.requests
    assert (request.method, request.path) == ("GET", "/wiki/rest/api/search")
    assert request.param("cql") == (
        'space in ("ENG","OPS") AND type = page AND text ~ "gateway timeout"'
    )
    assert (request.param("limit"), request.param("expand")) == ("3", "content.space")


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_a_hostile_query_arrives_as_one_cql_string(
    atlassian_standin: AtlassianStandin, tmp_path: Path, query: str
) -> None:
    confluence(atlassian_standin, tmp_path).search(query)

    [request] = atlassian_standin.requests
    match = _CQL.match(request.param("cql"))
    assert match is not None, request.param("cql")
    assert match.group("spaces") == '"ENG","OPS"'
    assert unquote_string(match.group("text")) == " ".join(
        re.sub(r"[\x00-\x1f]", " ", query).split()
    )


def test_confluence_results_outside_the_scope_are_dropped(
    atlassian_standin: AtlassianStandin, tmp_path: Path
) -> None:
    atlassian_standin.answer_outside_scope = True

    items = confluence(atlassian_standin, tmp_path, spaces=("ENG",)).search("gateway")

    assert [item.id for item in items] == ["98765"]  # OPS and SECRET pages were answered


def _service_fault(
    standin: AtlassianStandin, tmp_path: Path, which: str
) -> JiraConnector | ConfluenceConnector:
    if which == "jira":
        return jira(standin, tmp_path, timeout_s=0.5)
    client = standin.client("confluence", tmp_path, timeout_s=0.5)
    return ConfluenceConnector(client, Scope(kind="confluence-space", values=("ENG",)), "x", 99)


@pytest.mark.parametrize("which", ["jira", "confluence"])
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (401, SourceUnauthorized),
        (403, SourceUnauthorized),
        (404, NotFound),
        (429, SourceRateLimited),
        (500, SourceUnavailable),
        ("too-large", ResponseTooLarge),
        ("malformed", MalformedResponse),
        ("slow", SourceUnavailable),
    ],
)
def test_each_fault_is_its_named_error(
    atlassian_standin: AtlassianStandin,
    tmp_path: Path,
    which: str,
    fault: int | str,
    error: type[ContextError],
) -> None:
    connector = _service_fault(atlassian_standin, tmp_path, which)
    atlassian_standin.fail_next(fault, retry_after="7" if fault == 429 else None)

    with pytest.raises(error) as raised:
        connector.fetch("PAY-7" if which == "jira" else "98765")

    assert raised.value.connector == which
    assert not any(form in str(raised.value) for form in CREDENTIAL_FORMS)
    if fault == 429:
        assert isinstance(raised.value, SourceRateLimited)
        assert raised.value.retry_after_s == 7
    assert len(atlassian_standin.requests) == 1


def test_factories_build_connectors_from_settings(
    atlassian_standin: AtlassianStandin, tmp_path: Path
) -> None:
    service = atlassian_standin.service(tmp_path)
    context = ContextSettings(
        jira=SourceSettings(scope=["PAY"], data_class="confidential"),
        confluence=SourceSettings(scope=["ENG"]),
        max_item_chars=5000,
    )
    wiki_service = service.model_copy(update={"base_url": service.base_url + "/wiki"})
    settings = Settings(context=context, jira=service, confluence=wiki_service)

    found = jira_connector(settings)
    assert found is not None
    atlassian_standin.clients.append(found.client)
    assert (found.name, found.scope, found.data_class) == (
        "jira",
        Scope(kind="jira-project", values=("PAY",)),
        "confidential",
    )
    assert found.fetch("PAY-8").id == "PAY-8"
    wiki = confluence_connector(settings)
    assert wiki is not None
    atlassian_standin.clients.append(wiki.client)
    assert wiki.scope == Scope(kind="confluence-space", values=("ENG",))
    assert wiki.fetch("98765").id == "98765"  # a trailing /wiki in the base URL is dropped

    assert jira_connector(Settings(context=context)) is None
    assert confluence_connector(Settings(jira=service, confluence=service)) is None
