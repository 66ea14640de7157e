"""A stand-in Atlassian Cloud site on 127.0.0.1 for tests: the Jira REST v3 and Confluence
REST endpoints the context connectors call, answering documents shaped as Atlassian
documents them (fixtures in `tests/fixtures/context/atlassian/`).

- `GET /rest/api/3/issue/{key}?fields=a,b` the issue with only those fields;
  `GET /rest/api/3/issue/{key}/remotelink` its remote links;
  `POST /rest/api/3/search/jql` `{"jql", "fields", "maxResults"}` → `{"issues", "isLast"}`.
- `GET /wiki/api/v2/pages/{id}?body-format=storage`, `GET /wiki/api/v2/spaces?keys=A,B`,
  `GET /wiki/rest/api/search?cql=...&limit=n[&expand=content.space]` → `{"results": [...]}`.

It checks what the real site would: HTTP Basic `user:token` (401 otherwise), and the query
language. It parses only the one JQL/CQL shape the connectors write
(`project in ("A","B") AND text ~ "..." ORDER BY updated DESC`,
`space in ("A") AND type = page AND text ~ "..."`) with the string syntax Atlassian
documents (`\\"` and `\\\\` inside double quotes) and answers 400 with Atlassian's error
body to anything else, so an injected clause shows as a failed parse or as one search term.
Every request is recorded (`requests`: method, path, query, headers with lower-case names,
body); `fail_next(401 | 403 | 404 | 429 | 500 | "too-large" | "malformed" | "slow",
retry_after=..., delay_s=...)` makes the next answer a fault. Pytest fixture:
`atlassian_standin` (import `atlassian_standin_fixture`); `standin.service(tmp_path)`
gives the `ServiceSettings` to reach it.
`answer_outside_scope = True` makes the site ignore the project/space clause, as a
misbehaving server would.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from codefactory.context.credentials import vendor_client
from codefactory.context.http import VendorClient
from codefactory.context.settings import ServiceSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "context" / "atlassian"
USER = "factory-bot@bank.example"
TOKEN = "ATATT3xFfGF0-standin-token-7f3a9c"
TOO_LARGE_BYTES = 6_000_000
_STRING = r'"(?:[^"\\]|\\.)*"'
_JQL = re.compile(
    rf"^project in \((?P<projects>{_STRING}(?:,{_STRING})*)\) AND text ~ (?P<text>{_STRING})"
    r" ORDER BY updated DESC$"
)
_CQL = re.compile(
    rf"^space in \((?P<spaces>{_STRING}(?:,{_STRING})*)\) AND type = page"
    rf" AND text ~ (?P<text>{_STRING})$"
)


def fixture(name: str) -> Any:
    """One of the recorded-shape documents, freshly parsed (tests may change it)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def unquote_string(literal: str) -> str:
    """The value of a JQL/CQL double-quoted string literal."""
    return re.sub(r"\\(.)", r"\1", literal[1:-1], flags=re.DOTALL)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    """Percent-decoded."""
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Names lower-cased."""
    body: bytes

    def param(self, name: str) -> str:
        return self.query.get(name, [""])[0]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Fault:
    status: int
    body: bytes | None
    headers: dict[str, str]
    delay_s: float


@dataclass
class AtlassianStandin:
    base_url: str = ""
    user: str = USER
    token: str = TOKEN
    issues: dict[str, Any] = field(default_factory=lambda: fixture("jira-issues.json"))
    remote_links: dict[str, Any] = field(default_factory=lambda: fixture("jira-remotelinks.json"))
    pages: list[Any] = field(default_factory=lambda: fixture("confluence-pages.json"))
    spaces: list[Any] = field(default_factory=lambda: fixture("confluence-spaces.json"))
    answer_outside_scope: bool = False
    updates: list[tuple[str, str, Any]] = field(default_factory=list)
    """Comments and transitions posted: (issue key, `comment` or `transitions`, body)."""
    transition_ids: tuple[str, ...] = ("21", "31", "41")
    """The transitions the issues' workflow offers."""
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    closing: threading.Event = field(default_factory=threading.Event)
    clients: list[VendorClient] = field(default_factory=list)
    """Clients to close at the end (`client`, or a test appends a factory-built one)."""

    def fail_next(
        self,
        fault: int | str,
        *,
        body: bytes | None = None,
        retry_after: str | None = None,
        delay_s: float | None = None,
    ) -> None:
        """The next request is answered with a fault: a status (401, 403, 404, 429, 500, ...)
        with Atlassian's error body unless `body` is given and `Retry-After` when
        `retry_after` is; `"too-large"` (a 6 MB JSON body), `"malformed"` (a body that is
        not JSON) or `"slow"` (the right answer after `delay_s`, default 3 s)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if fault == "too-large":
            self.faults.append(Fault(200, b'["' + b"x" * TOO_LARGE_BYTES + b'"]', headers, 0.0))
        elif fault == "malformed":
            self.faults.append(Fault(200, b'{"issues": [{"key": "PAY-7",', headers, 0.0))
        elif fault == "slow":
            self.faults.append(Fault(0, None, headers, 3.0 if delay_s is None else delay_s))
        elif isinstance(fault, int):
            self.faults.append(Fault(fault, body, headers, delay_s or 0.0))
        else:
            raise ValueError(f"unknown fault {fault!r}")

    def service(self, token_dir: Path, *, timeout_s: float = 5.0) -> ServiceSettings:
        """Settings for this site with the token in a file under `token_dir`."""
        token_file = token_dir / "atlassian-token"
        token_file.write_text(self.token + "\n", encoding="utf-8")
        return ServiceSettings(
            base_url=self.base_url, user=self.user, token_file=token_file, timeout_s=timeout_s
        )

    def client(self, connector: str, token_dir: Path, *, timeout_s: float = 5.0) -> VendorClient:
        """The production client for this site (credential read from a file), closed when
        the stand-in stops (`VendorClient` keeps a connection pool)."""
        client = vendor_client(connector, self.service(token_dir, timeout_s=timeout_s))
        self.clients.append(client)
        return client

    def answer(self, request: RecordedRequest) -> tuple[int, Any, dict[str, str], float]:
        """`(status, document or raw bytes, headers, delay)` for `request`."""
        self.requests.append(request)
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None and fault.status:
            body = fault.body if fault.body is not None else _jira_error(f"fault {fault.status}")
            return fault.status, body, fault.headers, fault.delay_s
        delay_s = fault.delay_s if fault is not None else 0.0
        expected = base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return 401, b"Client must be authenticated to access this resource.", {}, delay_s
        status, document = self._route(request)
        return status, document, {}, delay_s

    def _route(self, request: RecordedRequest) -> tuple[int, Any]:
        method, path = request.method, request.path
        if match := re.fullmatch(r"/rest/api/3/issue/([^/]+)", path):
            return self._issue(match.group(1), request.param("fields"))
        if method == "POST" and (
            match := re.fullmatch(r"/rest/api/3/issue/([^/]+)/(comment|transitions)", path)
        ):
            return self._update(match.group(1), match.group(2), request.json())
        if match := re.fullmatch(r"/rest/api/3/issue/([^/]+)/remotelink", path):
            if match.group(1) not in self.remote_links:
                return 404, _jira_error("Issue does not exist or you do not have permission.")
            return 200, self.remote_links[match.group(1)]
        if method == "POST" and path == "/rest/api/3/search/jql":
            return self._search_jql(request.json())
        if match := re.fullmatch(r"/wiki/api/v2/pages/(\d+)", path):
            return self._page(match.group(1), request.param("body-format"))
        if path == "/wiki/api/v2/spaces":
            keys = set(request.param("keys").split(","))
            return 200, {
                "results": [space for space in self.spaces if space["key"] in keys],
                "_links": {"base": "https://bank.atlassian.net/wiki"},
            }
        if path == "/wiki/rest/api/search":
            return self._search_cql(request)
        return 404, _jira_error(f"no endpoint {method} {path}")

    def _update(self, key: str, what: str, body: Any) -> tuple[int, Any]:
        """A comment (201 with the comment) or a transition (204; 400 for an id the issue's
        workflow does not offer from its status), as Jira Cloud answers them."""
        if key not in self.issues:
            return 404, _jira_error("Issue does not exist or you do not have permission to see it.")
        self.updates.append((key, what, body))
        if what == "comment":
            return 201, {"id": str(10200 + len(self.updates)), "body": body.get("body")}
        if body.get("transition", {}).get("id") not in self.transition_ids:
            return 400, _jira_error("Transition id is not valid for this issue.")
        return 204, b""

    def _issue(self, key: str, fields: str) -> tuple[int, Any]:
        issue = self.issues.get(key)
        if issue is None:
            return 404, _jira_error("Issue does not exist or you do not have permission to see it.")
        return 200, _with_fields(issue, fields.split(",") if fields else None)

    def _search_jql(self, body: Any) -> tuple[int, Any]:
        match = _JQL.match(str(body.get("jql", "")))
        if match is None:
            return 400, _jira_error(f"Error in the JQL Query: {body.get('jql')!r}")
        projects = {unquote_string(p) for p in re.findall(_STRING, match.group("projects"))}
        words = unquote_string(match.group("text")).lower().split()
        found = [
            _with_fields(issue, body.get("fields"))
            for key, issue in self.issues.items()
            if (self.answer_outside_scope or key.split("-")[0] in projects)
            and all(word in json.dumps(issue).lower() for word in words)
        ]
        found.sort(key=lambda issue: str(self.issues[issue["key"]]["fields"]["updated"]))
        return 200, {"issues": found[::-1][: int(body.get("maxResults", 50))], "isLast": True}

    def _page(self, page_id: str, body_format: str) -> tuple[int, Any]:
        page = next((p for p in self.pages if p["id"] == page_id), None)
        if page is None:
            return 404, {"errors": [{"status": 404, "code": "NOT_FOUND", "title": "Not Found"}]}
        answer = copy.deepcopy(page)
        if body_format != "storage":
            answer["body"] = {}
        return 200, answer

    def _search_cql(self, request: RecordedRequest) -> tuple[int, Any]:
        match = _CQL.match(request.param("cql"))
        if match is None:
            return 400, {
                "statusCode": 400,
                "message": "com.atlassian.confluence.api.service.exceptions."
                f"BadRequestException: Could not parse cql : {request.param('cql')}",
            }
        keys = {unquote_string(s) for s in re.findall(_STRING, match.group("spaces"))}
        words = unquote_string(match.group("text")).lower().split()
        expand = request.param("expand").split(",")
        results = [
            self._search_result(page, words, "content.space" in expand)
            for page in self.pages
            if (self.answer_outside_scope or self._space(page)["key"] in keys)
            and all(word in _page_text(page).lower() for word in words)
        ]
        limit = int(request.param("limit") or 25)
        return 200, {
            "results": results[:limit],
            "start": 0,
            "limit": limit,
            "size": len(results[:limit]),
            "totalSize": len(results),
            "cqlQuery": request.param("cql"),
            "searchDuration": 12,
            "_links": {"base": "https://bank.atlassian.net/wiki", "context": "/wiki"},
        }

    def _space(self, page: dict[str, Any]) -> dict[str, Any]:
        return next(space for space in self.spaces if space["id"] == page["spaceId"])

    def _search_result(self, page: dict[str, Any], words: list[str], space: bool) -> Any:
        text = _page_text(page)
        excerpt = text[:240]
        for word in words[:1]:
            excerpt = re.sub(
                re.escape(word), lambda m: f"@@@hl@@@{m.group(0)}@@@endhl@@@", excerpt, flags=re.I
            )
        content: dict[str, Any] = {
            "id": page["id"],
            "type": "page",
            "status": "current",
            "title": page["title"],
            "_links": {"webui": page["_links"]["webui"], "tinyui": page["_links"]["tinyui"]},
            "_expandable": {"space": f"/rest/api/space/{self._space(page)['key']}"},
        }
        if space:
            found = self._space(page)
            content["space"] = {
                "id": int(found["id"]),
                "key": found["key"],
                "name": found["name"],
                "type": "global",
                "status": "current",
            }
        return {
            "content": content,
            "title": page["title"],
            "excerpt": excerpt,
            "url": page["_links"]["webui"],
            "resultGlobalContainer": {
                "title": self._space(page)["name"],
                "displayUrl": f"/spaces/{self._space(page)['key']}",
            },
            "breadcrumbs": [],
            "entityType": "content",
            "iconCssClass": "aui-icon content-type-page",
            "lastModified": page["version"]["createdAt"],
            "friendlyLastModified": "Nov 02, 2026",
            "score": 0.0,
        }


def _jira_error(message: str) -> dict[str, Any]:
    return {"errorMessages": [message], "errors": {}}


def _with_fields(issue: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    answer = copy.deepcopy(issue)
    if fields is not None:
        answer["fields"] = {k: v for k, v in answer["fields"].items() if k in fields}
    return answer


def _page_text(page: dict[str, Any]) -> str:
    storage = page["body"]["storage"]["value"]
    return f"{page['title']} {re.sub(r'<[^>]+>', ' ', storage)}"


def _handler(standin: AtlassianStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test's assertions say what went wrong."""

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = RecordedRequest(
                method=self.command,
                path=unquote(split.path),
                query=parse_qs(split.query, keep_blank_values=True),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            status, document, headers, delay_s = standin.answer(request)
            if delay_s and standin.closing.wait(delay_s):
                return
            raw = document if isinstance(document, bytes) else json.dumps(document).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                for start in range(0, len(raw), 65536):
                    self.wfile.write(raw[start : start + 65536])
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client stopped reading (a byte cap)

    return Handler


@contextmanager
def serve_atlassian() -> Iterator[AtlassianStandin]:
    """A stand-in site listening on 127.0.0.1 (a free port) until the block ends."""
    standin = AtlassianStandin()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin))
    server.daemon_threads = True
    standin.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.02,), name="atlassian-standin", daemon=True
    )
    thread.start()
    try:
        yield standin
    finally:
        for client in standin.clients:
            client.close()
        standin.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(name="atlassian_standin")
def atlassian_standin_fixture() -> Iterator[AtlassianStandin]:
    """`atlassian_standin`: the stand-in site for one test (fresh fixtures, no requests
    recorded). A test module imports `atlassian_standin_fixture` and asks for
    `atlassian_standin` (two names, so the parameter does not shadow an import)."""
    with serve_atlassian() as standin:
        yield standin
