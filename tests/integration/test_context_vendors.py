"""The ServiceNow, Sentry and Datadog connectors against stand-ins speaking each vendor's
documented wire format: what is sent (paths, parameters, bodies, credentials), what comes
back, what is refused before any request, and each failure as its named error."""

# The stand-ins' fixtures are imported here, so test arguments redefine their names.
# ruff: noqa: F811

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from codefactory.config import Settings
from codefactory.context.connectors.datadog import DatadogConnector, datadog_connector
from codefactory.context.connectors.sentry import SentryConnector, sentry_connector
from codefactory.context.connectors.servicenow import (
    ServiceNowConnector,
    html_to_text,
    servicenow_connector,
)
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
from codefactory.context.http import VendorClient
from codefactory.context.port import Scope
from codefactory.context.settings import (
    ContextSettings,
    DatadogSettings,
    SentrySettings,
    ServiceSettings,
    SourceSettings,
)
from tests.context_standins.vendors import (  # noqa: F401 - fixtures
    DATADOG_API_KEY,
    DATADOG_APPLICATION_KEY,
    SENTRY_TOKEN,
    SERVICENOW_PASSWORD,
    SERVICENOW_USER,
    DatadogStandin,
    SentryStandin,
    ServiceNowStandin,
    VendorStandin,
    datadog_standin,
    sentry_standin,
    servicenow_standin,
)

SENTRY_ISSUE = "4509012345"
OUT_OF_SCOPE_ISSUE = "4509099999"
PAYMENTS_LOG = "AQAAAZLTkq2x7d1a9wAAAABBWkxUa3EyeEFBQ0RXT1Q"


def _file(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n")
    return path


def _context(source: str, scope: list[str], max_item_chars: int) -> ContextSettings:
    return ContextSettings(
        max_item_chars=max_item_chars,
        **{source: SourceSettings(scope=scope, data_class="confidential")},
    )


def _plain_http(connector: Any) -> Any:
    # The stand-ins speak plain HTTP on loopback: skip loading the system CA bundle, which
    # costs about 0.14 s per request (VendorClient opens an httpx.Client per request).
    connector.client.verify = False
    return connector


def make_servicenow(
    standin: VendorStandin,
    tmp_path: Path,
    scope: tuple[str, ...] = ("incident", "kb_knowledge"),
    *,
    max_item_chars: int = 20_000,
    timeout_s: float = 5.0,
    password: str = SERVICENOW_PASSWORD,
) -> ServiceNowConnector:
    service = ServiceSettings(
        base_url=standin.base_url,
        user=SERVICENOW_USER,
        token_file=_file(tmp_path, "servicenow-password", password),
        timeout_s=timeout_s,
    )
    settings = Settings(
        data_dir=tmp_path / "data",
        servicenow=service,
        context=_context("servicenow", list(scope), max_item_chars),
    )
    connector = servicenow_connector(settings)
    assert connector is not None
    return _plain_http(connector)


def make_sentry(
    standin: VendorStandin,
    tmp_path: Path,
    scope: tuple[str, ...] = ("payments-api",),
    *,
    max_item_chars: int = 20_000,
    timeout_s: float = 5.0,
    token: str = SENTRY_TOKEN,
) -> SentryConnector:
    service = SentrySettings(
        base_url=standin.base_url,
        organization="acme-bank",
        token_file=_file(tmp_path, "sentry-token", token),
        timeout_s=timeout_s,
    )
    settings = Settings(
        data_dir=tmp_path / "data",
        sentry=service,
        context=_context("sentry", list(scope), max_item_chars),
    )
    connector = sentry_connector(settings)
    assert connector is not None
    return _plain_http(connector)


def make_datadog(
    standin: VendorStandin,
    tmp_path: Path,
    scope: tuple[str, ...] = ("payments",),
    *,
    max_item_chars: int = 20_000,
    timeout_s: float = 5.0,
    api_key: str = DATADOG_API_KEY,
) -> DatadogConnector:
    service = DatadogSettings(
        base_url=standin.base_url,
        token_file=_file(tmp_path, "dd-api-key", api_key),
        application_key_file=_file(tmp_path, "dd-app-key", DATADOG_APPLICATION_KEY),
        timeout_s=timeout_s,
    )
    settings = Settings(
        data_dir=tmp_path / "data",
        datadog=service,
        context=_context("datadog", list(scope), max_item_chars),
    )
    connector = datadog_connector(settings)
    assert connector is not None
    return _plain_http(connector)


# ServiceNow


def test_servicenow_fetches_an_incident_by_number(
    servicenow_standin: ServiceNowStandin, tmp_path: Path
) -> None:
    item = make_servicenow(servicenow_standin, tmp_path).fetch("INC0010001")

    (request,) = servicenow_standin.requests
    assert (request.method, request.path) == ("GET", "/api/now/table/incident")
    pair = base64.b64encode(f"{SERVICENOW_USER}:{SERVICENOW_PASSWORD}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {pair}"
    assert request.query["sysparm_query"] == ["number=INC0010001"]
    assert request.query["sysparm_limit"] == ["1"]
    assert request.query["sysparm_display_value"] == ["true"]
    assert request.query["sysparm_exclude_reference_link"] == ["true"]
    fields = request.query["sysparm_fields"][0].split(",")
    assert {"number", "short_description", "description", "work_notes", "cmdb_ci"} <= set(fields)
    assert "caller_id" not in fields
    assert (item.source, item.id, item.citation) == (
        "servicenow",
        "INC0010001",
        "servicenow:INC0010001",
    )
    assert item.title.startswith("INC0010001: Payment callbacks rejected")
    assert item.data_class == "confidential"
    assert "+44 20 7946 0958" in item.text  # masking is MaskingConnector's job, not the adapter's
    assert "Sentry issue PAYMENTS-API-3F matches" in item.text
    assert "assignment_group: Payments Platform" in item.text
    assert (
        item.uri
        == f"{servicenow_standin.base_url}/incident.do?sys_id=9d385017c611228701d22104cc95c371"
    )
    assert not item.truncated


def test_servicenow_renders_a_knowledge_article_from_html(
    servicenow_standin: ServiceNowStandin, tmp_path: Path
) -> None:
    item = make_servicenow(servicenow_standin, tmp_path).fetch("KB0000012")

    assert servicenow_standin.requests[0].path == "/api/now/table/kb_knowledge"
    assert "text" in servicenow_standin.requests[0].query["sysparm_fields"][0].split(",")
    assert "- Host names are converted with IDNA 2008 (UTS #46)." in item.text
    assert "Questions: <payments-platform> channel." in item.text
    assert "<p>" not in item.text and "alert(" not in item.text
    assert "kb_knowledge_base: IT" in item.text


def test_html_to_text_keeps_blocks_apart() -> None:
    assert html_to_text("<p>one</p><p>two&amp;three</p><br>four") == "one\n\ntwo&three\n\nfour"


def test_servicenow_search_builds_the_encoded_query_per_scoped_table(
    servicenow_standin: ServiceNowStandin, tmp_path: Path
) -> None:
    items = make_servicenow(servicenow_standin, tmp_path).search("callback", limit=5)

    assert [item.id for item in items] == ["INC0010001", "KB0000012"]
    incident, knowledge = servicenow_standin.requests
    assert incident.path == "/api/now/table/incident"
    assert incident.query["sysparm_query"] == [
        "short_descriptionLIKEcallback^ORdescriptionLIKEcallback"
    ]
    assert incident.query["sysparm_limit"] == ["5"]
    assert knowledge.path == "/api/now/table/kb_knowledge"
    assert knowledge.query["sysparm_query"] == ["short_descriptionLIKEcallback^ORtextLIKEcallback"]
    assert knowledge.query["sysparm_limit"] == ["4"]


def test_servicenow_search_stops_at_the_limit(
    servicenow_standin: ServiceNowStandin, tmp_path: Path
) -> None:
    items = make_servicenow(servicenow_standin, tmp_path).search("callback", limit=1)

    assert [item.id for item in items] == ["INC0010001"]
    assert len(servicenow_standin.requests) == 1


def test_servicenow_query_text_cannot_add_conditions(
    servicenow_standin: ServiceNowStandin, tmp_path: Path
) -> None:
    connector = make_servicenow(servicenow_standin, tmp_path, ("incident",))

    items = connector.search("zzz^ORnumber=INC0010002\n^NQnumber=INC0010002")

    assert items == []
    (request,) = servicenow_standin.requests
    inert = "zzzORnumber=INC0010002NQnumber=INC0010002"
    assert request.query["sysparm_query"] == [
        f"short_descriptionLIKE{inert}^ORdescriptionLIKE{inert}"
    ]
    with pytest.raises(ValueError, match="empty"):
        connector.search("^^\x00 ")


def test_servicenow_refuses_tables_outside_its_scope_without_a_request(
    servicenow_standin: ServiceNowStandin, tmp_path: Path
) -> None:
    connector = make_servicenow(servicenow_standin, tmp_path, ("kb_knowledge",))

    with pytest.raises(OutOfScope, match="incident"):
        connector.fetch("INC0010001")
    with pytest.raises(OutOfScope):
        connector.fetch("RITM0010001")
    with pytest.raises(NotFound, match="not a ServiceNow record number"):
        connector.fetch("KB0000012^NQnumber=INC0010001")
    assert servicenow_standin.requests == []


def test_servicenow_unknown_number_is_not_found(
    servicenow_standin: ServiceNowStandin, tmp_path: Path
) -> None:
    with pytest.raises(NotFound, match="INC0099999"):
        make_servicenow(servicenow_standin, tmp_path).fetch("INC0099999")


def test_servicenow_factory_is_off_without_instance_or_scope(tmp_path: Path) -> None:
    assert servicenow_connector(Settings(data_dir=tmp_path)) is None
    no_scope = Settings(
        data_dir=tmp_path, servicenow=ServiceSettings(base_url="https://bank.service-now.com")
    )
    assert servicenow_connector(no_scope) is None
    with pytest.raises(ValueError, match="sys_user"):
        ServiceNowConnector(
            make_servicenow_client(), Scope(kind="servicenow-table", values=("sys_user",)), "x", 9
        )


def make_servicenow_client() -> VendorClient:
    return VendorClient(connector="servicenow", base_url="https://bank.service-now.com")


# Sentry


def test_sentry_fetch_renders_the_latest_event_without_user_data(
    sentry_standin: SentryStandin, tmp_path: Path
) -> None:
    item = make_sentry(sentry_standin, tmp_path).fetch(SENTRY_ISSUE)

    issue, event = sentry_standin.requests
    assert issue.path == f"/api/0/organizations/acme-bank/issues/{SENTRY_ISSUE}/"
    assert event.path == f"/api/0/organizations/acme-bank/issues/{SENTRY_ISSUE}/events/latest/"
    assert issue.headers["authorization"] == f"Bearer {SENTRY_TOKEN}"
    assert (item.id, item.uri) == (SENTRY_ISSUE, "https://acme-bank.sentry.io/issues/4509012345/")
    assert item.title.startswith("PAYMENTS-API-3F: UnicodeError")
    text = item.text
    traceback = [
        "Traceback (most recent call last):",
        '  File "flask/app.py", line 880, in dispatch_request',
        "    return self.ensure_sync(self.view_functions[rule.endpoint])(**view_args)",
        '  File "service/callbacks.py", line 16, in callback_allowed  [in app]',
        "    return to_ascii(parts.hostname) in ALLOWED_CALLBACK_HOSTS",
        '  File "service/hostnames.py", line 15, in to_ascii  [in app]',
        '    return idna.encode(hostname.strip().rstrip("."), uts46=True).decode("ascii")',
        '  File "idna/core.py", line 370, in encode',
        "    raise IDNAError('Empty Label')",
        "UnicodeError: encoding with 'idna' codec failed (UnicodeError: label empty or too long)",
    ]
    assert "\n".join(traceback) in text
    assert "culprit: service.hostnames in to_ascii" in text
    assert "events: 148  users: 37" in text
    assert "level: error  status: unresolved" in text
    assert "[info] payments: refund queued to IBAN GB82WEST12345698765432" in text
    assert "httplib:  method=GET url=https://crm.internal/customers?email=" in text
    assert "sk_live_51Hf7PqLrT9xYzAbCdEfGhIjKlMnOpQrStUvWx" in text  # masked by the wrapper
    assert "  environment=production" in text and "  release=payments-api@2.4.0" in text
    assert "request: POST https://payments.example.com/callbacks" in text
    for never in ("jdoe-never-shown", "COOKIE-NEVER-SHOWN", "HEADER-TOKEN-NEVER-SHOWN"):
        assert never not in text
    assert "203.0.113.7" not in text and "user=" not in text and "cvv" not in text
    assert "Jane Doe" not in text


def test_sentry_stack_files_are_in_app_most_recent_first(
    sentry_standin: SentryStandin, tmp_path: Path
) -> None:
    connector = make_sentry(sentry_standin, tmp_path)

    assert connector.stack_files(SENTRY_ISSUE) == ["service/hostnames.py", "service/callbacks.py"]
    frames = sentry_standin.document["events"][SENTRY_ISSUE]["entries"][0]["data"]["values"][0]
    frames["stacktrace"]["frames"] += [
        {"filename": "/etc/passwd", "inApp": True, "lineNo": 1},
        {"filename": "../secrets.py", "inApp": True, "lineNo": 1},
        {"filename": "service/callbacks.py", "inApp": True, "lineNo": 9},
    ]
    assert connector.stack_files(SENTRY_ISSUE) == ["service/callbacks.py", "service/hostnames.py"]


def test_sentry_keeps_the_last_twenty_breadcrumbs(
    sentry_standin: SentryStandin, tmp_path: Path
) -> None:
    crumbs = [
        {"timestamp": f"t{n}", "category": "c", "level": "info", "message": f"crumb-{n:02d}"}
        for n in range(30)
    ]
    sentry_standin.document["events"][SENTRY_ISSUE]["entries"][1]["data"]["values"] = crumbs

    text = make_sentry(sentry_standin, tmp_path).fetch(SENTRY_ISSUE).text

    assert "breadcrumbs (last 20):" in text
    assert "crumb-09" not in text and "crumb-10" in text and "crumb-29" in text


def test_sentry_refuses_an_issue_of_another_project(
    sentry_standin: SentryStandin, tmp_path: Path
) -> None:
    connector = make_sentry(sentry_standin, tmp_path)

    with pytest.raises(OutOfScope) as refused:
        connector.fetch(OUT_OF_SCOPE_ISSUE)
    with pytest.raises(OutOfScope):
        connector.stack_files(OUT_OF_SCOPE_ISSUE)

    assert "ADMIN-ONLY" not in str(refused.value)
    assert [r.path.endswith("/events/latest/") for r in sentry_standin.requests] == [False, False]


def test_sentry_refuses_an_id_that_is_not_a_number_without_a_request(
    sentry_standin: SentryStandin, tmp_path: Path
) -> None:
    with pytest.raises(NotFound, match="not a Sentry issue id"):
        make_sentry(sentry_standin, tmp_path).fetch("../../projects/acme-bank/internal-admin")
    assert sentry_standin.requests == []


def test_sentry_search_is_restricted_to_the_scoped_projects(
    sentry_standin: SentryStandin, tmp_path: Path
) -> None:
    connector = make_sentry(sentry_standin, tmp_path)

    items = connector.search("codec failed")
    connector.search("idna")

    paths = [r.path for r in sentry_standin.requests]
    assert paths == [
        "/api/0/projects/acme-bank/payments-api/",
        "/api/0/organizations/acme-bank/issues/",
        "/api/0/organizations/acme-bank/issues/",
    ]
    search = sentry_standin.requests[1]
    assert search.query["query"] == ['"codec failed"']
    assert search.query["project"] == ["4504"]
    assert search.query["limit"] == ["10"]
    assert [item.id for item in items] == [SENTRY_ISSUE]
    assert "Traceback" not in items[0].text and "culprit:" in items[0].text


def test_sentry_search_text_cannot_add_filters(
    sentry_standin: SentryStandin, tmp_path: Path
) -> None:
    connector = make_sentry(sentry_standin, tmp_path)

    assert connector.search('Error" project:internal-admin \\') == []
    assert sentry_standin.requests[-1].query["query"] == ['"Error\\" project:internal-admin \\\\"']


def test_sentry_drops_answers_from_projects_out_of_scope(
    sentry_standin: SentryStandin, tmp_path: Path
) -> None:
    sentry_standin.ignore_project_param = True

    items = make_sentry(sentry_standin, tmp_path).search("Error")

    assert [item.id for item in items] == [SENTRY_ISSUE]


def test_sentry_factory_needs_organization_and_scope(tmp_path: Path) -> None:
    no_org = Settings(
        data_dir=tmp_path,
        sentry=SentrySettings(base_url="https://sentry.io"),
        context=_context("sentry", ["payments-api"], 100),
    )
    assert sentry_connector(no_org) is None
    assert sentry_connector(Settings(data_dir=tmp_path)) is None


# Datadog


def test_datadog_search_names_only_the_scoped_indexes(
    datadog_standin: DatadogStandin, tmp_path: Path
) -> None:
    items = make_datadog(datadog_standin, tmp_path).search("callback")

    (request,) = datadog_standin.requests
    assert (request.method, request.path) == ("POST", "/api/v2/logs/events/search")
    assert request.headers["dd-api-key"] == DATADOG_API_KEY
    assert request.headers["dd-application-key"] == DATADOG_APPLICATION_KEY
    assert "authorization" not in request.headers
    assert request.body == {
        "filter": {"query": '"callback"', "indexes": ["payments"], "from": "now-24h", "to": "now"},
        "sort": "-timestamp",
        "page": {"limit": 10},
    }
    assert [item.id for item in items] == [
        f"log:{PAYMENTS_LOG}",
        "log:AQAAAZLTkp9q3c2b8wAAAABBWkxUa3AwVEFBQ0RXT1M",
    ]
    first = items[0]
    assert first.citation == f"datadog:log:{PAYMENTS_LOG}"
    assert "jane.doe@example.com" in first.text  # masked by the wrapper
    assert "service: payments-api" in first.text and "host: payments-api-7d9f8-abcde" in first.text
    assert '"merchant": {"id": "M-20931"}' in first.text
    assert "4111 1111 1111 1111" in items[1].text


def test_datadog_query_text_is_one_phrase(datadog_standin: DatadogStandin, tmp_path: Path) -> None:
    items = make_datadog(datadog_standin, tmp_path).search('x" OR index:security-audit \\', limit=3)

    assert items == []
    body = datadog_standin.requests[0].body
    assert body["filter"]["query"] == '"x\\" OR index:security-audit \\\\"'
    assert body["filter"]["indexes"] == ["payments"]
    assert body["page"] == {"limit": 3}


def test_datadog_fetches_a_log_line_by_id(datadog_standin: DatadogStandin, tmp_path: Path) -> None:
    connector = make_datadog(datadog_standin, tmp_path)

    item = connector.fetch(f"log:{PAYMENTS_LOG}")

    body = datadog_standin.requests[0].body
    assert body["filter"] == {
        "query": f"@id:{PAYMENTS_LOG}",
        "indexes": ["payments"],
        "from": "now-15d",
        "to": "now",
    }
    assert item.id == f"log:{PAYMENTS_LOG}" and "UnicodeError" in item.text
    with pytest.raises(NotFound):
        connector.fetch("log:AQAAAZLTkaudit0000000000000000000000000001")  # another index


def test_datadog_monitor_in_scope_only_by_its_index_tag(
    datadog_standin: DatadogStandin, tmp_path: Path
) -> None:
    connector = make_datadog(datadog_standin, tmp_path)

    item = connector.fetch("monitor:12345")
    with pytest.raises(OutOfScope) as refused:
        connector.fetch("monitor:67890")

    assert [r.path for r in datadog_standin.requests] == [
        "/api/v1/monitor/12345",
        "/api/v1/monitor/67890",
    ]
    assert item.id == "monitor:12345"
    assert "state: Alert" in item.text and "type: log alert" in item.text
    assert 'index("payments")' in item.text
    assert "admin logins" not in str(refused.value)


def test_datadog_refuses_malformed_refs_without_a_request(
    datadog_standin: DatadogStandin, tmp_path: Path
) -> None:
    connector = make_datadog(datadog_standin, tmp_path)

    for ref in ("log:a b", "log:", "monitor:12/../1", "event:1", "12345"):
        with pytest.raises(NotFound):
            connector.fetch(ref)
    assert datadog_standin.requests == []


def test_datadog_factory_is_off_without_site_or_scope(tmp_path: Path) -> None:
    assert datadog_connector(Settings(data_dir=tmp_path)) is None
    site_only = Settings(
        data_dir=tmp_path, datadog=DatadogSettings(base_url="https://api.datadoghq.eu")
    )
    assert datadog_connector(site_only) is None


# Long text, credentials and faults, for all three


def test_long_text_is_clipped_and_marked(
    servicenow_standin: ServiceNowStandin,
    sentry_standin: SentryStandin,
    datadog_standin: DatadogStandin,
    tmp_path: Path,
) -> None:
    items = [
        make_servicenow(servicenow_standin, tmp_path, max_item_chars=100).fetch("INC0010001"),
        make_sentry(sentry_standin, tmp_path, max_item_chars=100).fetch(SENTRY_ISSUE),
        make_datadog(datadog_standin, tmp_path, max_item_chars=100).fetch("monitor:12345"),
    ]
    for item in items:
        assert item.truncated
        assert item.text.endswith("more characters not shown]")
        assert len(item.text.split("\n[truncated")[0]) == 100


def test_a_refused_credential_is_source_unauthorized(
    servicenow_standin: ServiceNowStandin,
    sentry_standin: SentryStandin,
    datadog_standin: DatadogStandin,
    tmp_path: Path,
) -> None:
    with pytest.raises(SourceUnauthorized, match="401"):
        make_servicenow(servicenow_standin, tmp_path, password="wrong").fetch("INC0010001")
    with pytest.raises(SourceUnauthorized, match="401"):
        make_sentry(sentry_standin, tmp_path, token="wrong").fetch(SENTRY_ISSUE)
    with pytest.raises(SourceUnauthorized, match="403"):
        make_datadog(datadog_standin, tmp_path, api_key="wrong").search("callback")


def test_a_missing_credential_file_is_source_unauthorized(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        sentry=SentrySettings(
            base_url="https://sentry.io", organization="acme-bank", token_file=tmp_path / "none"
        ),
        context=_context("sentry", ["payments-api"], 100),
    )
    with pytest.raises(SourceUnauthorized, match="cannot be read"):
        sentry_connector(settings)


Call = Callable[[Any, Path], Any]
CALLS: dict[str, tuple[str, Call]] = {
    "servicenow": (
        "servicenow_standin",
        lambda s, p: make_servicenow(s, p, timeout_s=0.2).search("callback"),
    ),
    "sentry": (
        "sentry_standin",
        lambda s, p: make_sentry(s, p, timeout_s=0.2).fetch(SENTRY_ISSUE),
    ),
    "datadog": (
        "datadog_standin",
        lambda s, p: make_datadog(s, p, timeout_s=0.2).fetch("monitor:12345"),
    ),
}
FAULTS: dict[str, tuple[int | str, type[ContextError]]] = {
    "401": (401, SourceUnauthorized),
    "403": (403, SourceUnauthorized),
    "404": (404, NotFound),
    "429": (429, SourceRateLimited),
    "500": (500, SourceUnavailable),
    "too-large": ("too-large", ResponseTooLarge),
    "malformed": ("malformed", MalformedResponse),
    "not-i-json": ("not-i-json", MalformedResponse),  # an unpaired surrogate (RFC 7493)
    "slow": ("slow", SourceUnavailable),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("call", CALLS)
def test_each_fault_is_its_named_error(
    call: str, fault: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fixture, act = CALLS[call]
    standin: VendorStandin = request.getfixturevalue(fixture)
    kind, error = FAULTS[fault]
    standin.fail_next(kind, retry_after="7", delay_s=1.0)

    with pytest.raises(error) as raised:
        act(standin, tmp_path)

    assert raised.value.connector == call
    assert len(standin.requests) == 1
    if isinstance(raised.value, SourceRateLimited):
        assert raised.value.retry_after_s == 7.0
