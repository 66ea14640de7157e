"""What the Azure DevOps and Bitbucket stand-ins share: a loopback `http.server` (the
context stand-ins' `VendorStandin`), credentials mapped to the person or app they belong to,
every action recorded with who did it, and faults answered in the vendor's own error shape.

`fail_next(status, retry_after=...)` answers the next request with that status (401, 403,
404, 409, 400, 422, 500, 502, 503, 429 with `Retry-After`) and the vendor's error body;
`actions` lists `(action, identity)` in order (`("open request", "sponsor")`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.context_standins.vendors import Answer, RecordedRequest, VendorStandin

FAULT_MESSAGES = {
    400: "The request is invalid.",
    401: "Authentication failed.",
    403: "The token lacks the permission for this operation.",
    404: "The resource does not exist or the token may not see it.",
    409: "The resource was changed by another request.",
    422: "The request could not be processed.",
    429: "Rate limit exceeded: retry after the delay given.",
    500: "Internal server error.",
    502: "Bad gateway.",
    503: "Service unavailable.",
}


@dataclass
class ForgeStandin(VendorStandin):
    """A forge API on 127.0.0.1; subclasses give `identity`, `vendor_error` and `route`."""

    tokens: dict[str, str] = field(default_factory=dict)
    """Credential (the raw token) → the identity it belongs to."""
    actions: list[tuple[str, str]] = field(default_factory=list)
    stale_searches: int = 0
    """The next this many searches for an open request find nothing (a lagging index)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def identity(self, headers: dict[str, str]) -> str | None:
        """Whose credential the request carries; None: none the forge knows."""
        raise NotImplementedError

    def vendor_error(self, status: int, message: str, exception: str = "") -> Any:
        raise NotImplementedError

    def authorized(self, headers: dict[str, str]) -> bool:
        return self.identity(headers) is not None

    def unauthorized(self) -> Answer:
        return 401, self.vendor_error(401, FAULT_MESSAGES[401])

    def did(self, action: str, request: RecordedRequest) -> None:
        self.actions.append((action, self.identity(request.headers) or ""))

    def search_is_stale(self) -> bool:
        """Whether this search should miss what exists (counts `stale_searches` down)."""
        if self.stale_searches <= 0:
            return False
        self.stale_searches -= 1
        return True

    def requests_to(self, method: str, path_end: str) -> list[RecordedRequest]:
        """The requests received with `method` whose path ends with `path_end`."""
        return [r for r in self.requests if r.method == method and r.path.endswith(path_end)]

    def answer(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(request)
            fault = self.faults.pop(0) if self.faults else None
            if fault is not None and isinstance(fault.kind, int):
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                message = FAULT_MESSAGES.get(fault.kind, f"HTTP {fault.kind}")
                return fault.kind, headers, _json(self.vendor_error(fault.kind, message))
            if not self.authorized(request.headers):
                status, body = self.unauthorized()
                return status, {}, _json(body)
            status, body = self.route(request)
            return status, self.answer_headers(request), b"" if body is None else _json(body)

    def answer_headers(self, request: RecordedRequest) -> dict[str, str]:
        """Headers the vendor adds to an authenticated answer (none by default)."""
        return {}


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def running(standin: ForgeStandin) -> Iterator[Any]:
    """Start `standin`, yield it, stop it (for pytest fixtures)."""
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()
