"""`codefactory login` for people who use the CLI against a remote factory: OpenID Connect's
authorization code flow with PKCE and a loopback redirect, the standard for native apps
(RFC 8252 §7.3, RFC 7636), and the token store the CLI reads.

The factory names its identity provider and the CLI's client id in its protected resource
metadata (RFC 9728, `/.well-known/oauth-protected-resource`). The CLI listens on
`http://127.0.0.1:<random port>/callback`, sends the person's browser to the provider, checks
the `state` it gets back, redeems the code with its PKCE verifier, and checks the ID token
(signature against the provider's keys, `iss`, `aud`, `exp`, and its `nonce`). The ID token is
then the bearer token the factory accepts until it expires. Where no browser can reach a
loopback address (a remote shell), `codefactory login --device` uses the device authorization
grant instead (RFC 8628, `web/device_flow.py`); both check the ID token the same way.

Tokens are kept in `<config dir>/credentials.json` (mode 0600), keyed by factory URL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from codefactory.web.auth_oidc import OidcProvider, ProviderUnavailable, TokenRefused
from codefactory.web.settings import DEFAULT_ALGORITHMS


class LoginFailed(Exception):
    """The login did not complete; the message says why and what to do."""


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """What `codefactory login` keeps for one factory."""

    factory: str
    issuer: str
    client_id: str
    subject: str
    id_token: str
    expires_at: int
    """Unix seconds after which the token is refused (its `exp`)."""

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.expires_at


class CredentialStore:
    """`credentials.json`: factory URL → `Credentials`, readable by its owner only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, factory: str) -> Credentials | None:
        entry = self._read().get(factory_url(factory))
        return Credentials(**entry) if isinstance(entry, dict) else None

    def put(self, credentials: Credentials) -> None:
        entries = self._read()
        entries[credentials.factory] = asdict(credentials)
        self._write(entries)

    def remove(self, factory: str | None = None) -> list[str]:
        """Forget one factory's tokens (all with None); returns the factories forgotten."""
        entries = self._read()
        gone = (
            list(entries) if factory is None else [u for u in entries if u == factory_url(factory)]
        )
        for url in gone:
            del entries[url]
        if gone:
            self._write(entries)
        return gone

    def _read(self) -> dict[str, Any]:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return {}
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise LoginFailed(
                f"{self.path} is readable by others (mode {oct(mode & 0o777)}): its tokens may "
                "have leaked; delete it and log in again"
            )
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise LoginFailed(f"cannot read {self.path}: {err}") from err
        return document if isinstance(document, dict) else {}

    def _write(self, entries: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entries, handle, indent=2, sort_keys=True)
        os.replace(temporary, self.path)


def factory_url(url: str) -> str:
    """The factory's base URL as the store keys it (no trailing slash)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoginFailed(f"{url!r} is not an http(s) URL of a factory")
    return url.strip().rstrip("/")


@dataclass(frozen=True, kw_only=True)
class Discovery:
    """What a factory names for logging in to it: its identity provider (RFC 9728 protected
    resource metadata), the CLI's client id, the scope to ask for, and the provider's OpenID
    discovery document."""

    factory: str
    issuer: str
    client_id: str
    scope: str
    provider: OidcProvider
    metadata: dict[str, Any]

    def credentials(self, tokens: dict[str, Any], nonce: str) -> Credentials:
        """The credentials from a token response whose ID token holds (signature, `iss`,
        `aud`, `exp`, and `nonce`, the one this login sent); `LoginFailed` if it does not."""
        claims = _checked_id_token(self.provider, str(tokens.get("id_token", "")), nonce)
        return Credentials(
            factory=self.factory,
            issuer=self.issuer,
            client_id=self.client_id,
            subject=str(claims["sub"]),
            id_token=str(tokens["id_token"]),
            expires_at=int(claims["exp"]),
        )


def discover(factory: str) -> Discovery:
    """Read `factory`'s `/.well-known/oauth-protected-resource` (RFC 9728) and its first
    authorization server's discovery document. Raises `LoginFailed` when the factory names no
    identity provider or either document cannot be read."""
    base = factory_url(factory)
    resource = _get_json(f"{base}/.well-known/oauth-protected-resource")
    issuers = resource.get("authorization_servers") or []
    if not issuers:
        raise LoginFailed(f"{base} names no identity provider: its web.oidc_issuer is unset")
    issuer = str(issuers[0])
    client_id = str(resource.get("codefactory_cli_client_id") or "codefactory")
    provider = OidcProvider(issuer, audiences=[client_id], algorithms=DEFAULT_ALGORITHMS)
    try:
        metadata = asyncio.run(provider.metadata())
    except ProviderUnavailable as err:
        raise LoginFailed(str(err)) from err
    return Discovery(
        factory=base,
        issuer=issuer,
        client_id=client_id,
        scope=" ".join(resource.get("scopes_supported") or ["openid"]),
        provider=provider,
        metadata=metadata,
    )


def login(
    factory: str,
    *,
    open_browser: Callable[[str], None],
    client_secret: str | None = None,
    timeout_s: float = 300.0,
) -> Credentials:
    """Log in to `factory`'s identity provider as a native app; `open_browser(url)` shows the
    person the provider's page. Raises `LoginFailed` naming the step that failed."""
    found = discover(factory)
    client_id, metadata = found.client_id, found.metadata
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    with LoopbackRedirect() as redirect:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect.uri,
            "scope": found.scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        open_browser(f"{metadata['authorization_endpoint']}?{urlencode(query)}")
        answer = redirect.wait(timeout_s)
    code = _code_of(answer, state)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect.uri,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    if client_secret:
        form["client_secret"] = client_secret
    return found.credentials(_post_form(str(metadata["token_endpoint"]), form), nonce)


def _code_of(answer: dict[str, str], state: str) -> str:
    if not hmac.compare_digest(answer.get("state", ""), state):
        raise LoginFailed("the redirect's state is not this login's (a forged or stale redirect)")
    if "error" in answer:
        raise LoginFailed(
            f"the identity provider refused: {answer['error']} "
            f"{answer.get('error_description', '')}"
        )
    if not answer.get("code"):
        raise LoginFailed("the identity provider sent no authorization code")
    return answer["code"]


def _checked_id_token(provider: OidcProvider, token: str, nonce: str) -> dict[str, Any]:
    try:
        claims = asyncio.run(provider.verify(token))
    except (TokenRefused, ProviderUnavailable) as err:
        raise LoginFailed(f"the ID token is refused: {err}") from err
    if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
        raise LoginFailed("the ID token's nonce is not this login's (a replayed token)")
    return claims


class LoopbackRedirect:
    """A one-shot HTTP listener on 127.0.0.1 for the provider's redirect (RFC 8252 §7.3)."""

    def __init__(self) -> None:
        self._answer: dict[str, str] | None = None
        self._arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                parts = urlsplit(self.path)
                if parts.path != "/callback" or outer._arrived.is_set():
                    self.send_error(404)
                    return
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                outer._answer = query
                outer._arrived.set()
                text = "Login received: you may close this window and return to the terminal."
                body = f"<!doctype html><p>{html.escape(text)}</p>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self._server.timeout = 0.2
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}/callback"

    def __enter__(self) -> LoopbackRedirect:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.server_close()

    def wait(self, timeout_s: float) -> dict[str, str]:
        """The redirect's query parameters; `LoginFailed` after `timeout_s` seconds."""
        deadline = time.monotonic() + timeout_s
        while not self._arrived.is_set():
            if time.monotonic() > deadline:
                raise LoginFailed(f"no answer from the identity provider in {timeout_s:.0f} s")
            self._server.handle_request()
        assert self._answer is not None
        return self._answer


def _get_json(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=15, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError) as err:
        raise LoginFailed(f"cannot read {url}: {err}") from err
    if not isinstance(document, dict):
        raise LoginFailed(f"{url} is not a JSON object")
    return document


def _post_form(url: str, form: dict[str, str]) -> dict[str, Any]:
    try:
        response = httpx.post(url, data=form, timeout=15)
        document = response.json()
    except (httpx.HTTPError, ValueError) as err:
        raise LoginFailed(f"the token endpoint {url} failed: {err}") from err
    if response.status_code != 200 or not isinstance(document, dict):
        detail = (
            document.get("error_description") or document.get("error")
            if isinstance(document, dict)
            else response.text[:200]
        )
        raise LoginFailed(f"the token endpoint refused the code: {detail}")
    return document


def bearer_get(credentials: Credentials, path: str, **params: Any) -> httpx.Response:
    """GET `path` of the factory with the stored token."""
    return httpx.get(
        f"{credentials.factory}{path}",
        params=params,
        headers={"Authorization": f"Bearer {credentials.id_token}", "Accept": "application/json"},
        timeout=30,
    )
