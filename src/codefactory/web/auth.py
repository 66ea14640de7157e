"""Who is calling: every route but the webhooks, the health checks and the published keys
needs a browser session (after an OpenID Connect login) or a bearer token the bank's identity
provider signed, and its subject must be a person in the directory.

`AuthGate` is deny-by-default ASGI middleware: a route added later is protected unless it is
listed in `PUBLIC`. Routes get the caller with the `current_person` dependency. Browsers
without a session are sent to `/login`; API clients get 401 with `WWW-Authenticate: Bearer`
(RFC 6750 §3) naming the protected resource metadata (RFC 9728).
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from codefactory.audit.port import AuditLog
from codefactory.identity.directory import Directory, IdentityKind, Person
from codefactory.identity.errors import DirectoryInvalid, IdentityRefused
from codefactory.web.auth_audit import LoginAudit, capped, token_digest
from codefactory.web.auth_oidc import OidcProvider, ProviderUnavailable, TokenRefused
from codefactory.web.auth_sessions import SessionStore, UsedStates
from codefactory.web.settings import WebSettings

PUBLIC_PATHS = {
    "/healthz",
    "/readyz",
    "/metrics",  # Prometheus: its own token (observability.metrics_token), not a login
    "/.well-known/jwks.json",
    "/.well-known/oauth-protected-resource",
    "/login",
    "/auth/callback",
    "/logout",
}
"""Paths anyone may call; with `POST /webhooks/*`, which authenticate by signature."""
ISSUER_ENV = "CODEFACTORY_WEB__OIDC_ISSUER"
SEEN_TOKENS = 10_000
LOGIN_TTL_S = 600
"""A login must come back from the provider within this many seconds."""


def is_public(method: str, path: str) -> bool:
    """Whether `method path` needs no login."""
    return path in PUBLIC_PATHS or (method == "POST" and path.startswith("/webhooks/"))


class WebAuth:
    """What the gate and the login routes share: settings, the provider, the directory."""

    def __init__(self, settings: WebSettings, *, directory: Directory, audit: AuditLog) -> None:
        self.settings = settings
        self.directory = directory
        self.audit = LoginAudit(audit)
        self.provider = (
            OidcProvider(
                settings.oidc_issuer,
                audiences=settings.audiences(),
                algorithms=settings.oidc_algorithms,
            )
            if settings.oidc_issuer
            else None
        )
        self.sessions = SessionStore()
        self.used_states = UsedStates(LOGIN_TTL_S)
        self._seen: dict[str, None] = {}

    async def authenticate(self, request: Request) -> Person | Response:
        """The person behind `request`'s bearer token or session, or the answer refusing it."""
        if self.provider is None:
            return unconfigured()
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return self.challenge(request, error="invalid_request", text="use a Bearer token")
            return await self._bearer(request, token.strip())
        session: dict[str, Any] = request.scope.get("session") or {}
        if session.get("person"):
            return await self._session(request, session)
        return self.challenge(request)

    async def person_of(self, request: Request, claims: dict[str, Any]) -> Person | Response:
        """The directory person of a verified token's `iss#sub`, or 403 (403 means the
        provider vouched for someone the factory does not know)."""
        subject = f"{claims['iss']}#{claims['sub']}"
        try:
            person = self.directory.resolve(IdentityKind.OIDC, subject)
        except IdentityRefused as err:
            await self.refuse(request, "refused-subject", str(err), subject=subject)
            return problem(403, f"the OIDC subject is refused: {err}")
        except DirectoryInvalid as err:
            return problem(503, f"the directory of people cannot be read: {err}")
        if person is None:
            await self.refuse(request, "unknown-subject", "", subject=subject)
            return problem(
                403,
                f"you signed in as OIDC subject {capped(subject)!r}, but no person in the "
                "factory's directory has that identity: ask the directory's keeper to add "
                f'`identities = {{ oidc = ["{capped(subject)}"] }}` to your entry',
            )
        return person

    async def refuse(self, request: Request, reason: str, detail: str, **facts: str) -> None:
        """Record a refusal (aggregated per source and reason per minute). `reason` is a word
        of `auth_audit.REASONS`; `detail` and `facts` are capped and escaped by the log. The
        source is the socket's peer (or what a trusted proxy says, `web.trusted_proxies`)."""
        source = request.client.host if request.client else "unknown"
        await run_in_threadpool(self.audit.refused, source, reason, detail, **facts)

    def challenge(self, request: Request, *, error: str = "", text: str = "") -> Response:
        """No usable credentials: browsers go to `/login`, API clients get 401."""
        accepts_html = "text/html" in request.headers.get("accept", "")
        if not error and request.method == "GET" and accepts_html:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        metadata = f"{self.base_url(request)}/.well-known/oauth-protected-resource"
        value = f'Bearer realm="codefactory", resource_metadata="{metadata}"'
        if error:
            value += f', error="{error}", error_description="{_quoted(text)}"'
        detail = text or (
            "authentication required: log in at /login, or send `Authorization: Bearer "
            "<token>` with a token from the identity provider (`codefactory login`)"
        )
        return problem(401, detail, headers={"WWW-Authenticate": value})

    def base_url(self, request: Request) -> str:
        """The factory's external URL: `web.public_url`; else the request's `Host` (one of
        the trusted hosts, or the request was refused) with the connection's own scheme
        (forwarded headers change it only from `web.trusted_proxies`)."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    async def _bearer(self, request: Request, token: str) -> Person | Response:
        assert self.provider is not None
        try:
            claims = await self.provider.verify(token)
        except TokenRefused as err:
            await self.refuse(request, err.reason, str(err), token=token_digest(token))
            return self.challenge(request, error="invalid_token", text=f"token refused: {err}")
        except ProviderUnavailable as err:
            return problem(503, f"the identity provider cannot be reached, so no token is "
                                f"accepted: {err}")  # fmt: skip
        person = await self.person_of(request, claims)
        if isinstance(person, Person):
            digest = token_digest(token)
            if digest not in self._seen:
                self._remember(digest)
                subject = f"{claims['iss']}#{claims['sub']}"
                await run_in_threadpool(
                    self.audit.login, person, subject=subject, method="bearer", token=digest
                )
        return person

    async def _session(self, request: Request, session: dict[str, Any]) -> Person | Response:
        expires = session.get("expires")
        if not isinstance(expires, int | float) or expires < time.time():
            session.clear()
            return self.challenge(request)
        subject = str(session.get("subject", ""))
        issuer, _, sub = subject.rpartition("#")
        if issuer != self.settings.oidc_issuer:
            session.clear()
            return self.challenge(request)
        if not self.sessions.alive(session.get("sid"), str(session.get("person", ""))):
            session.clear()  # logged out, or a cookie from before a restart
            await self.refuse(request, "session-ended", "a session that has ended")
            return self.challenge(request)
        person = await self.person_of(request, {"iss": issuer, "sub": sub})
        if not isinstance(person, Person) or person.id != session.get("person"):
            session.clear()  # removed from the directory, or the identity moved
            return person if not isinstance(person, Person) else self.challenge(request)
        return person

    def _remember(self, digest: str) -> None:
        if len(self._seen) >= SEEN_TOKENS:
            self._seen.pop(next(iter(self._seen)))
        self._seen[digest] = None


class AuthGate:
    """ASGI middleware: the caller's `Person` in `scope["state"]["person"]`, or the refusal."""

    def __init__(self, app: ASGIApp, auth: WebAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # none are served; a later one is not let in unseen
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http" or is_public(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        outcome = await self.auth.authenticate(Request(scope))
        if isinstance(outcome, Response):
            await outcome(scope, receive, send)
            return
        scope.setdefault("state", {})["person"] = outcome
        await self.app(scope, receive, send)


def current_person(request: Request) -> Person:
    """FastAPI dependency: the authenticated person (the gate has let only them through)."""
    person = getattr(request.state, "person", None)
    if not isinstance(person, Person):
        raise HTTPException(status_code=401, detail="authentication required")
    return person


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error answer `{"detail": ...}`, as FastAPI's own."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def unconfigured() -> JSONResponse:
    """401 while no identity provider is configured: nothing but the public routes works."""
    return problem(
        401,
        f"no identity provider is configured, so nobody can log in: set {ISSUER_ENV} "
        "(web.oidc_issuer) and CODEFACTORY_WEB__OIDC_CLIENT_ID to the bank's OpenID Connect "
        "provider (see docs/web.md)",
        headers={"WWW-Authenticate": 'Bearer realm="codefactory"'},
    )


def session_secret(settings: WebSettings, data_dir: Path) -> str:
    """The key signing session cookies: `web.session_secret_file`, else
    `<data_dir>/web-session.key` made 0600 on first use. A file that others may read is
    refused (`PermissionError`): whoever reads it can forge any session."""
    path = settings.session_secret_file or data_dir / "web-session.key"
    if settings.session_secret_file is None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(
            f"session key {path} is readable by others (mode {oct(mode & 0o777)}): chmod 600"
        )
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < 32:
        raise PermissionError(f"session key {path} is shorter than 32 characters")
    return secret


def client_secret(settings: WebSettings) -> str | None:
    """The factory's client secret (`web.oidc_client_secret` or its file), or None."""
    if settings.oidc_client_secret is not None:
        return settings.oidc_client_secret.get_secret_value()
    if settings.oidc_client_secret_file is not None:
        return settings.oidc_client_secret_file.read_text(encoding="utf-8").strip()
    return None


def _quoted(text: str) -> str:
    return "".join(c for c in text if c.isprintable() and c not in '"\\')[:300]
