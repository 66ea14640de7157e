"""The HTTP machinery the forge API stand-ins share: a threaded server on 127.0.0.1 (port 0),
every request recorded, and faults injected on the next matching requests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Seen:
    """One request as the stand-in received it: the path is decoded once (`%2F` → `/`)."""

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    who: str
    """Whose token it carried (`app`, a user's login, or `` when none matched)."""


@dataclass
class Fault:
    """An answer given instead of the real one to the next `times` matching requests."""

    status: int
    times: int = 1
    retry_after: str | None = None
    rate_limit: bool = False
    path_contains: str = ""
    method: str = ""
    body: Any = None


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Invalid(Exception):
    """The request failed validation: the stand-in answers `answer`."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(str(answer.body))
        self.answer = answer


class LoopbackApi:
    """A JSON API on `base_url`; subclasses implement `handle` and `fault_answer`."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                answer = api.dispatch(self.command, self.path, dict(self.headers.items()), raw)
                data = (
                    b""
                    if answer.body is None
                    else (
                        answer.body.encode()
                        if isinstance(answer.body, str)
                        else json.dumps(answer.body).encode()
                    )
                )
                self.send_response(answer.status)
                content_type = "text/plain" if isinstance(answer.body, str) else "application/json"
                self.send_header("Content-Type", f"{content_type}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: str | None = None,
        rate_limit: bool = False,
        path_contains: str = "",
        method: str = "",
        body: Any = None,
    ) -> None:
        """Answer `status` (the vendor's body for it) to the next `times` requests whose
        path holds `path_contains` and whose method is `method` (any when empty);
        `rate_limit` marks a 403/429 as the vendor's rate limit, `retry_after` its header."""
        with self.lock:
            self.faults.append(
                Fault(status, times, retry_after, rate_limit, path_contains, method, body)
            )

    def calls(self, method: str, contains: str = "") -> list[Seen]:
        """The recorded requests of `method` whose decoded path holds `contains`."""
        return [s for s in self.requests if s.method == method and contains in s.path]

    def dispatch(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Answer:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        lowered = {k.lower(): v for k, v in headers.items()}
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        path = unquote(parts.path)
        who = self.who(lowered.get("authorization", ""))
        seen = Seen(method, path, parts.path, query, lowered, body, who)
        with self.lock:
            self.requests.append(seen)
            fault = next(
                (
                    f
                    for f in self.faults
                    if f.path_contains in path and f.method in ("", method) and f.times > 0
                ),
                None,
            )
            if fault is not None:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
        if fault is not None:
            return self.fault_answer(fault)
        if not who:
            return self.unauthorized()
        try:
            return self.handle(seen)
        except Invalid as err:
            return err.answer

    def who(self, authorization: str) -> str:
        raise NotImplementedError

    def unauthorized(self) -> Answer:
        raise NotImplementedError

    def fault_answer(self, fault: Fault) -> Answer:
        raise NotImplementedError

    def handle(self, seen: Seen) -> Answer:
        raise NotImplementedError


def check_fields(
    body: Any,
    *,
    required: dict[str, type | tuple[type, ...]],
    optional: dict[str, type | tuple[type, ...]],
) -> tuple[str, str] | None:
    """The first problem with `body` against a documented request schema, as
    `(kind, field)`: `not-object`, `unknown`, `missing` or `type`; None when it holds."""
    if not isinstance(body, dict):
        return "not-object", ""
    for key in body:
        if key not in required and key not in optional:
            return "unknown", key
    for key in required:
        if key not in body:
            return "missing", key
    for key, value in body.items():
        kinds = required.get(key) or optional[key]
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        fits = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not fits:
            return "type", key
    return None
