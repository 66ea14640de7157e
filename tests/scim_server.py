"""A stand-in SCIM 2.0 service provider for tests: a small WSGI app on 127.0.0.1 answering
`GET /scim/v2/Users` with RFC 7644 §3.4.2 ListResponse pages.

It checks what a real provider would: the bearer token (401 with an RFC 7644 §3.12 error
otherwise), the `Accept` media type, `startIndex`/`count` (1-based, positive), and the filter
syntax (`attrPath op value` with the RFC 7644 §3.4.2.2 operators, `and` between them; an
unparseable filter is a 400 `invalidFilter`), and applies `eq` filters to the users. Every
request's query is kept in `requests` for the test to inspect; `apply_filter=False` acts as a
provider that does not filter, `override` answers a fixed (malformed) body.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
EXTENSION = "urn:codefactory:params:scim:schemas:extension:identities:2.0:User"
_COMPARISON = re.compile(
    r"(?P<attr>[A-Za-z][\w$-]*(?:\.[A-Za-z][\w$-]*)?) (?P<op>eq|ne|co|sw|ew|gt|ge|lt|le) "
    r'(?P<value>true|false|null|-?\d+(?:\.\d+)?|"(?:[^"\\]|\\.)*")',
    re.IGNORECASE,
)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def user(
    user_name: str,
    *,
    display: str = "",
    roles: Iterable[str] = (),
    emails: Iterable[dict[str, Any]] = (),
    active: bool = True,
    identities: dict[str, list[str]] | None = None,
    ssh_keys: Iterable[str] = (),
) -> dict[str, Any]:
    """One SCIM User resource with the factory's extension."""
    resource: dict[str, Any] = {
        "schemas": [USER, EXTENSION],
        "id": f"id-{user_name}",
        "userName": user_name,
        "active": active,
        "roles": [{"value": role} for role in roles],
        "emails": list(emails),
        EXTENSION: {"identities": identities or {}, "sshKeys": list(ssh_keys)},
    }
    if display:
        resource["displayName"] = display
    return resource


@dataclass
class ScimApp:
    """The WSGI app: `users` are served to whoever shows `token`."""

    token: str
    users: list[dict[str, Any]] = field(default_factory=list)
    apply_filter: bool = True
    """False: the filter is parsed but not applied, as by a provider without filtering."""
    override: dict[str, Any] | None = None
    """A body answered instead of the page, to test malformed answers."""
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    list_schema: str = LIST

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        self.requests.append(query)
        if environ["PATH_INFO"] != "/scim/v2/Users" or environ["REQUEST_METHOD"] != "GET":
            return _answer(start_response, "404 Not Found", _error(404, "no such endpoint"))
        if environ.get("HTTP_AUTHORIZATION") != f"Bearer {self.token}":
            return _answer(start_response, "401 Unauthorized", _error(401, "bad token"))
        if "application/scim+json" not in environ.get("HTTP_ACCEPT", ""):
            return _answer(start_response, "406 Not Acceptable", _error(406, "scim+json only"))
        try:
            start = int(query.get("startIndex", ["1"])[0])
            count = int(query.get("count", ["100"])[0])
            matches = _filter(query.get("filter", [""])[0])
        except ValueError as err:
            body = _error(400, str(err), scim_type="invalidFilter")
            return _answer(start_response, "400 Bad Request", body)
        if start < 1 or count < 1:
            return _answer(start_response, "400 Bad Request", _error(400, "bad paging"))
        if self.override is not None:
            return _answer(start_response, "200 OK", self.override)
        chosen = [item for item in self.users if matches(item) or not self.apply_filter]
        page = chosen[start - 1 : start - 1 + count]
        body = {
            "schemas": [LIST],
            "totalResults": len(chosen),
            "startIndex": start,
            "itemsPerPage": len(page),
            "Resources": page,
        }
        return _answer(start_response, "200 OK", body)


def _filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """The predicate of an RFC 7644 filter of comparisons joined by `and`; `ValueError` when
    the text is not one (only `eq` is applied; other operators parse and match everything)."""
    if not text:
        return lambda _: True
    tests: list[tuple[str, Any]] = []
    for part in re.split(r" and ", text, flags=re.IGNORECASE):
        found = _COMPARISON.fullmatch(part)
        if found is None:
            raise ValueError(f"cannot parse filter {part!r}")
        if found["op"].lower() == "eq":
            tests.append((found["attr"], json.loads(found["value"].lower())))
    return lambda resource: all(resource.get(attr) == value for attr, value in tests)


def _error(status: int, detail: str, *, scim_type: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


def _answer(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/scim+json"), ("Content-Length", str(len(data)))]
    )
    return [data]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


@contextmanager
def scim_server(app: ScimApp) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 in a thread; yields the SCIM base URL."""
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/scim/v2"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
