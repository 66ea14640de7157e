"""A stand-in for GitHub's OAuth web application flow (authorization code with PKCE, and
refresh of expiring user-to-server tokens), on 127.0.0.1 in a thread.

`GET /login/oauth/authorize` consents at once as `login` and redirects to `redirect_uri` with
`code` and `state` (the real one shows a consent page first); `POST /login/oauth/access_token`
takes GitHub's documented form fields and answers JSON when asked (`Accept:
application/json`), with GitHub's habit of answering an error with status 200 and an
`error` field (`bad_verification_code`, `incorrect_client_credentials`,
`bad_refresh_token`). The S256 challenge is checked against the verifier; codes and refresh
tokens are single-use; issued access tokens expire after `expires_in` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

CLIENT_ID = "Iv1.codefactorytests"
CLIENT_SECRET = "oauth-client-secret-for-tests"


@dataclass
class OAuthStandin:
    url: str = ""
    login: str = "priya-shah"
    expires_in: int = 28800
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    issued: list[dict[str, Any]] = field(default_factory=list)
    """Every token answer, with the grant type that produced it."""
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _token_problem(standin: OAuthStandin, one: dict[str, str]) -> str:
    """GitHub's error code for a token request, or "" when it is good (and spent)."""
    if one.get("client_id") != CLIENT_ID or one.get("client_secret") != CLIENT_SECRET:
        return "incorrect_client_credentials"
    grant = one.get("grant_type", "authorization_code")
    if grant == "authorization_code":
        pending = standin.codes.pop(one.get("code", ""), None)
        if pending is None or _s256(one.get("code_verifier", "")) != pending["challenge"]:
            return "bad_verification_code"
        if one.get("redirect_uri", pending["redirect_uri"]) != pending["redirect_uri"]:
            return "redirect_uri_mismatch"
        return ""
    if grant == "refresh_token":
        if standin.refresh_tokens.pop(one.get("refresh_token", ""), None) is None:
            return "bad_refresh_token"
        return ""
    return "unsupported_grant_type"


def _handler(standin: OAuthStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any = None, location: str = "") -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            standin.requests.append(("GET", parts.path, query))
            one = {k: v[0] for k, v in query.items()}
            if parts.path == "/api/v3/user":  # GitHub Enterprise Server's REST API
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if token not in standin.refresh_tokens.values():
                    return self._send(401, {"message": "Bad credentials"})
                return self._send(200, {"login": standin.login, "id": 1, "type": "User"})
            if parts.path != "/login/oauth/authorize":
                return self._send(404, {"message": "Not Found"})
            if one.get("client_id") != CLIENT_ID or one.get("response_type", "code") != "code":
                return self._send(400, {"error": "invalid_request"})
            if one.get("code_challenge_method") != "S256" or not one.get("code_challenge"):
                return self._send(400, {"error": "invalid_request", "error_description": "PKCE"})
            code = secrets.token_hex(10)
            standin.codes[code] = {
                "challenge": one["code_challenge"],
                "redirect_uri": one.get("redirect_uri", ""),
            }
            back = (
                f"{one['redirect_uri']}?{urlencode({'code': code, 'state': one.get('state', '')})}"
            )
            self._send(302, location=back)

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            standin.requests.append(("POST", parts.path, form))
            one = {k: v[0] for k, v in form.items()}
            if parts.path != "/login/oauth/access_token":
                return self._send(404, {"message": "Not Found"})
            if "application/json" not in self.headers.get("Accept", ""):
                return self._send(406, {"error": "the test stand-in answers JSON only"})
            problem = _token_problem(standin, one)
            if problem:
                return self._send(200, {"error": problem})  # GitHub answers errors with 200
            grant = one.get("grant_type", "authorization_code")
            access, refresh = f"ghu_{secrets.token_hex(12)}", f"ghr_{secrets.token_hex(12)}"
            standin.refresh_tokens[refresh] = access
            answer = {
                "access_token": access,
                "expires_in": standin.expires_in,
                "refresh_token": refresh,
                "refresh_token_expires_in": 15811200,
                "scope": "",
                "token_type": "bearer",
            }
            standin.issued.append({"grant_type": grant, **answer})
            self._send(200, answer)

    return Handler


@pytest.fixture
def oauth_standin() -> Iterator[OAuthStandin]:
    standin = OAuthStandin()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin))
    standin.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
