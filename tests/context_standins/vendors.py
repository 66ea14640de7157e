"""Stand-ins for ServiceNow, Sentry and Datadog: one `http.server` each on 127.0.0.1 (port 0)
in a thread, answering the endpoints the context connectors use with bodies shaped as the
vendors document them (`tests/fixtures/context/vendors/*.json`).

Each checks the credential the way its vendor does (ServiceNow HTTP Basic, Sentry Bearer,
Datadog `DD-API-KEY` + `DD-APPLICATION-KEY`), records every request (`requests`: method,
path, query, headers with lower-case names, decoded JSON body) and can answer a fault
instead of the next request: `fail_next(401 | 403 | 404 | 429 | 500 | "too-large" |
"malformed" | "slow", retry_after=..., delay_s=...)`. ServiceNow's change requests can be
read back one by one, with an `approval` a test sets (`approvals`), and the whole instance
can be `down` (503).

Pytest fixtures: `servicenow_standin`, `sentry_standin`, `datadog_standin`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "context" / "vendors"
TOO_LARGE_BYTES = 6_000_000

SERVICENOW_USER = "codefactory.integration"
SERVICENOW_PASSWORD = "sn-password-for-tests"
SENTRY_TOKEN = "sntrys_token_for_tests"
DATADOG_API_KEY = "dd-api-key-for-tests"
DATADOG_APPLICATION_KEY = "dd-application-key-for-tests"

Answer = tuple[int, Any]


def load_fixture(name: str) -> dict[str, Any]:
    """A vendor's fixture document (`servicenow`, `sentry`, `datadog`)."""
    document: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))
    return document


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Fault:
    """What to answer instead of the next request."""

    kind: int | str
    retry_after: str = ""
    delay_s: float = 2.0


@dataclass
class VendorStandin:
    """A vendor API on 127.0.0.1; subclasses implement `authorized` and `route`."""

    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    base_url: str = ""
    _server: ThreadingHTTPServer | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    def fail_next(self, kind: int | str, *, retry_after: str = "", delay_s: float = 2.0) -> None:
        """Answer the next request with `kind`: an HTTP status (401, 403, 404, 429 with
        `retry_after`, 500), `"too-large"` (a 6 MB JSON body), `"malformed"` (not JSON),
        `"not-i-json"` (JSON holding an unpaired surrogate) or `"slow"` (the real answer
        after `delay_s` seconds)."""
        self.faults.append(Fault(kind, retry_after, delay_s))

    def authorized(self, headers: dict[str, str]) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Answer:
        return 401, {"detail": "Authentication credentials were not provided."}

    def route(self, request: RecordedRequest) -> Answer:
        raise NotImplementedError

    def answer(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for `request` (after any fault queued for it)."""
        self.requests.append(request)
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None and isinstance(fault.kind, int):
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return fault.kind, headers, json.dumps({"detail": f"fault {fault.kind}"}).encode()
        if fault is not None and fault.kind == "too-large":
            return 200, {}, b'{"padding": "' + b"x" * TOO_LARGE_BYTES + b'"}'
        if fault is not None and fault.kind == "malformed":
            return 200, {}, b'{"result": [{"number": "INC0010001", '
        if fault is not None and fault.kind == "not-i-json":  # JSON, not RFC 7493's I-JSON
            return 200, {}, b'{"result": [{"number": "INC0010001\\ud800"}]}'
        if fault is not None and fault.kind == "slow":
            self._stopping.wait(fault.delay_s)
        status, body = (
            self.route(request) if self.authorized(request.headers) else self.unauthorized()
        )
        return status, {}, json.dumps(body).encode()

    def start(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = RecordedRequest(
                    method=self.command,
                    path=url.path,
                    query=parse_qs(url.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=(
                        json.loads(raw)
                        if raw and "json" in self.headers.get("Content-Type", "json")
                        else raw or None
                    ),
                )
                status, headers, body = standin.answer(request)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading (a body over its cap, a timeout)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._server = server
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class ServiceNowStandin(VendorStandin):
    """`GET /api/now/table/{table}` over the fixture's records, honouring `sysparm_query`
    (`field=value`, `fieldLIKEvalue`, `^` for AND, `^OR` for OR, `^NQ` for a new query),
    `sysparm_fields` and `sysparm_limit`."""

    tables: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {k: v for k, v in load_fixture("servicenow").items() if k[0] != "_"}
    )
    created: list[dict[str, Any]] = field(default_factory=list)
    """Change requests created (`POST /api/now/table/change_request`), as sent."""
    attachments: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    """Attachments uploaded: their query parameters and bytes."""
    approvals: dict[str, str] = field(default_factory=dict)
    """A created change's `approval` by its sys_id, as a test sets it (the CAB deciding);
    unset: `not requested`, the value ServiceNow gives a new change."""
    down: bool = False
    """The instance is down: every request is answered 503, as a hibernating or failed
    instance behind its load balancer answers."""

    def authorized(self, headers: dict[str, str]) -> bool:
        pair = f"{SERVICENOW_USER}:{SERVICENOW_PASSWORD}".encode()
        return headers.get("authorization") == "Basic " + base64.b64encode(pair).decode()

    def unauthorized(self) -> Answer:
        return 401, {
            "error": {
                "message": "User Not Authenticated",
                "detail": "Required to provide Auth information",
            },
            "status": "failure",
        }

    def answer(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        if self.down:
            self.requests.append(request)
            body = {"error": {"message": "Instance Unavailable", "detail": None}}
            return 503, {}, json.dumps({**body, "status": "failure"}).encode()
        return super().answer(request)

    def route(self, request: RecordedRequest) -> Answer:
        if request.method == "POST":
            return self.create(request)
        record = re.fullmatch(r"/api/now/table/change_request/([0-9a-f]{32})", request.path)
        if request.method == "GET" and record is not None:
            return self.change(record[1], request.query)
        match = re.fullmatch(r"/api/now/table/([a-z_]+)", request.path)
        if request.method != "GET" or match is None or match[1] not in self.tables:
            return 400, {"error": {"message": "Invalid table", "detail": None}, "status": "failure"}
        query = request.query.get("sysparm_query", [""])[0]
        fields = request.query.get("sysparm_fields", [""])[0].split(",")
        limit = int(request.query.get("sysparm_limit", ["10000"])[0])
        found = [r for r in self.tables[match[1]] if encoded_query_matches(query, r)]
        return 200, {"result": [{f: r.get(f, "") for f in fields if f} for r in found[:limit]]}

    def create(self, request: RecordedRequest) -> Answer:
        """`POST /api/now/table/change_request` (201 with the record, a number and sys_id
        of its own) and `POST /api/now/attachment/file` (201 with the attachment record),
        as the Table and Attachment APIs answer them."""
        if request.path == "/api/now/table/change_request" and isinstance(request.body, dict):
            number = f"CHG{30001 + len(self.created):07d}"
            record = {**request.body, "number": number, "sys_id": f"{len(self.created):032x}"}
            self.created.append(record)
            return 201, {"result": record}
        if request.path == "/api/now/attachment/file" and isinstance(request.body, bytes):
            params = {k: v[0] for k, v in request.query.items()}
            self.attachments.append((params, request.body))
            result = {**params, "size_bytes": str(len(request.body)), "sys_id": "a" * 32}
            return 201, {"result": result}
        return 400, {"error": {"message": "Invalid request", "detail": None}, "status": "failure"}

    def change(self, sys_id: str, query: dict[str, list[str]]) -> Answer:
        """`GET /api/now/table/change_request/{sys_id}` (Table API, one record): the created
        change with its `approval`, limited to `sysparm_fields`; 404 in ServiceNow's error
        shape for an unknown sys_id."""
        found = [r for r in self.created if r["sys_id"] == sys_id]
        if not found:
            return 404, {
                "error": {
                    "message": "No Record found",
                    "detail": "Record doesn't exist or ACL restricts the record retrieval",
                },
                "status": "failure",
            }
        record = {**found[0], "approval": self.approvals.get(sys_id, "not requested")}
        fields = [f for f in query.get("sysparm_fields", [""])[0].split(",") if f]
        return 200, {"result": {f: record.get(f, "") for f in fields} if fields else record}


def encoded_query_matches(query: str, record: dict[str, Any]) -> bool:
    """Whether `record` satisfies a ServiceNow encoded query (the subset the stand-in
    understands: `=` and `LIKE` conditions joined by `^`, `^OR` and `^NQ`)."""
    if not query:
        return True
    return any(_and_matches(part, record) for part in query.split("^NQ"))


def _and_matches(query: str, record: dict[str, Any]) -> bool:
    groups: list[list[str]] = []
    for term in query.split("^"):
        if term.startswith("OR") and groups:
            groups[-1].append(term[2:])
        else:
            groups.append([term])
    return all(any(_condition(term, record) for term in group) for group in groups)


def _condition(term: str, record: dict[str, Any]) -> bool:
    match = re.fullmatch(r"([a-z_]+?)(LIKE|=)(.*)", term, re.DOTALL)
    if match is None:
        return False
    value = str(record.get(match[1], ""))
    if match[2] == "=":
        return value == match[3]
    return match[3].lower() in value.lower()


@dataclass
class SentryStandin(VendorStandin):
    """Organization `acme-bank`: project details, issue details, latest events, and the
    issue search (`query` free text or `"phrase"`, `project:<slug>` terms, `project` ids).
    `ignore_project_param=True` acts as a server that answers every project's issues."""

    document: dict[str, Any] = field(default_factory=lambda: load_fixture("sentry"))
    ignore_project_param: bool = False

    @property
    def organization(self) -> str:
        return str(self.document["organization"])

    def authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {SENTRY_TOKEN}"

    def unauthorized(self) -> Answer:
        return 401, {"detail": "Invalid token"}

    def route(self, request: RecordedRequest) -> Answer:
        org = f"/api/0/organizations/{re.escape(self.organization)}"
        issues = {issue["id"]: issue for issue in self.document["issues"]}
        projects = {project["slug"]: project for project in self.document["projects"]}
        found: Any = None
        if m := re.fullmatch(rf"/api/0/projects/{self.organization}/([\w-]+)/", request.path):
            found = projects.get(m[1])
        elif m := re.fullmatch(rf"{org}/issues/(\d+)/", request.path):
            found = issues.get(m[1])
        elif m := re.fullmatch(rf"{org}/issues/(\d+)/events/latest/", request.path):
            found = self.document["events"].get(m[1])
        elif request.path == f"/api/0/organizations/{self.organization}/issues/":
            found = self._search(request.query)
        if found is None:
            return 404, {"detail": "The requested resource does not exist"}
        return 200, found

    def _search(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        projects = set(query.get("project", []))
        terms, phrases = _sentry_terms(query.get("query", [""])[0])
        found = []
        for issue in self.document["issues"]:
            filtered = projects and not self.ignore_project_param
            if filtered and issue["project"]["id"] not in projects:
                continue
            if "project" in terms and issue["project"]["slug"] not in terms["project"]:
                continue
            text = f"{issue['title']} {issue['culprit']}".lower()
            if all(p.lower() in text for p in phrases):
                found.append(issue)
        return found[: int(query.get("limit", ["100"])[0])]


def _sentry_terms(query: str) -> tuple[dict[str, list[str]], list[str]]:
    """Sentry search syntax, the subset the stand-in understands: `"quoted phrase"` (with
    `\\"` escapes), `key:value` terms and bare words."""
    terms: dict[str, list[str]] = {}
    phrases: list[str] = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"|(\S+)', query):
        if m[1] is not None:
            phrases.append(re.sub(r"\\(.)", r"\1", m[1]))
        elif ":" in m[2]:
            key, _, value = m[2].partition(":")
            terms.setdefault(key, []).append(value)
        else:
            phrases.append(m[2])
    return terms, phrases


@dataclass
class DatadogStandin(VendorStandin):
    """`POST /api/v2/logs/events/search` over the fixture's logs (only `filter.indexes`,
    `*` when absent; `filter.query` a `"phrase"`, `@id:<id>`, or bare words; `page.limit`)
    and `GET /api/v1/monitor/{id}`."""

    document: dict[str, Any] = field(default_factory=lambda: load_fixture("datadog"))

    def authorized(self, headers: dict[str, str]) -> bool:
        return (
            headers.get("dd-api-key") == DATADOG_API_KEY
            and headers.get("dd-application-key") == DATADOG_APPLICATION_KEY
        )

    def unauthorized(self) -> Answer:
        return 403, {"errors": ["Forbidden"]}

    def route(self, request: RecordedRequest) -> Answer:
        if request.method == "POST" and request.path == "/api/v2/logs/events/search":
            return 200, self._search(request.body or {})
        if m := re.fullmatch(r"/api/v1/monitor/(\d+)", request.path):
            monitor = next((x for x in self.document["monitors"] if str(x["id"]) == m[1]), None)
            return (200, monitor) if monitor else (404, {"errors": ["Monitor not found"]})
        return 404, {"errors": ["Not found"]}

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        search = body.get("filter", {})
        indexes = search.get("indexes") or ["*"]
        query = search.get("query", "*")
        logs = [
            log
            for log in self.document["logs"]
            if ("*" in indexes or log["index"] in indexes) and _log_matches(query, log)
        ]
        limit = int(body.get("page", {}).get("limit", 10))
        data = [{k: v for k, v in log.items() if k != "index"} for log in logs[:limit]]
        return {
            "data": data,
            "links": {},
            "meta": {"elapsed": 12, "request_id": "pddv1ChZ0ZXN0", "status": "done"},
        }


def _log_matches(query: str, log: dict[str, Any]) -> bool:
    if query.startswith("@id:"):
        return bool(log["id"] == query.removeprefix("@id:"))
    message = str(log["attributes"].get("message", "")).lower()
    if len(query) >= 2 and query[0] == query[-1] == '"':
        return re.sub(r"\\(.)", r"\1", query[1:-1]).lower() in message
    return all(word.lower() in message for word in query.split() if word != "*")


def _running(standin: VendorStandin) -> Iterator[Any]:
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def servicenow_standin() -> Iterator[ServiceNowStandin]:
    """A ServiceNow Table API on 127.0.0.1 (user `SERVICENOW_USER`, `SERVICENOW_PASSWORD`)."""
    yield from _running(ServiceNowStandin())


@pytest.fixture
def sentry_standin() -> Iterator[SentryStandin]:
    """Sentry's web API for organization `acme-bank` (token `SENTRY_TOKEN`)."""
    yield from _running(SentryStandin())


@pytest.fixture
def datadog_standin() -> Iterator[DatadogStandin]:
    """Datadog's logs search and monitor APIs (keys `DATADOG_API_KEY`,
    `DATADOG_APPLICATION_KEY`)."""
    yield from _running(DatadogStandin())
