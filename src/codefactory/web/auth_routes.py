"""`/login` → the identity provider → `/auth/callback`, `/logout`, `/api/whoami`, the health
checks and the protected resource metadata (RFC 9728).

The login is OpenID Connect's authorization code flow with PKCE (S256), a `state` and a
`nonce` (authlib). The state's data is kept in the browser's own signed session cookie (no
other caller's `/login` can push it out) and used once: the server remembers each state
redeemed (`UsedStates`), so a callback replayed with an old copy of the cookie is refused. The
ID token is then checked again as a bearer token would be (`OidcProvider.verify`) and its
subject mapped to a directory person; the session's id is kept by the server
(`SessionStore`) until `/logout` or its end.
"""

from __future__ import annotations

import asyncio
import html
import logging
import ssl
import time
from typing import TYPE_CHECKING, Annotated, Any

import httpx
from authlib.integrations.starlette_client import (  # type: ignore[import-untyped]
    OAuth,
    OAuthError,
    StarletteOAuth2App,
)
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool

from codefactory.identity.directory import Person
from codefactory.web.auth import (
    LOGIN_TTL_S,
    WebAuth,
    client_secret,
    current_person,
    unconfigured,
)
from codefactory.web.auth_audit import capped, oauth_reason
from codefactory.web.auth_oidc import ProviderUnavailable, TokenRefused

if TYPE_CHECKING:
    from codefactory.factory import Factory


class LoginClient:
    """The authlib client, registered once the provider's discovery document is read."""

    def __init__(self, auth: WebAuth) -> None:
        self.auth = auth
        self.oauth = OAuth()  # no cache: each login's state lives in its browser's cookie
        self._client: StarletteOAuth2App | None = None
        self._lock = asyncio.Lock()
        # one TLS context for every login: authlib makes an HTTP client per request, and
        # loading the CA bundle each time would cost ~0.1 s of CPU per anonymous /login
        self._tls = ssl.create_default_context()

    async def client(self) -> StarletteOAuth2App:
        async with self._lock:
            if self._client is None:
                assert self.auth.provider is not None
                metadata = dict(await self.auth.provider.metadata())
                allowed = self.auth.settings.oidc_algorithms
                advertised = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
                metadata["id_token_signing_alg_values_supported"] = [
                    alg for alg in advertised if alg in allowed
                ]
                secret = client_secret(self.auth.settings)
                kwargs: dict[str, Any] = {
                    "scope": self.auth.settings.oidc_scopes,
                    "code_challenge_method": "S256",
                    "timeout": 10.0,
                    "verify": self._tls,
                }
                if secret is None:
                    kwargs["token_endpoint_auth_method"] = "none"
                self._client = self.oauth.register(
                    "idp",
                    client_id=self.auth.settings.oidc_client_id,
                    client_secret=secret,
                    client_kwargs=kwargs,
                    **metadata,
                )
                self._client.framework.expires_in = LOGIN_TTL_S
            return self._client


log = logging.getLogger("codefactory.web")


def auth_router(factory: Factory, auth: WebAuth) -> APIRouter:
    """The login routes, `/api/whoami`, `/healthz`, `/readyz` and the resource metadata."""
    router = APIRouter()
    login_client = LoginClient(auth)

    @router.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @router.get(
        "/readyz",
        tags=["health"],
        responses={503: {"description": "The store cannot be read"}},
    )
    async def readyz() -> JSONResponse:
        """The store answers (else 503); says whether login works: `unconfigured`,
        `unreachable` (the provider's discovery cannot be read) or `ready`. Webhooks work
        without the provider, so its outage alone does not make the factory unready."""
        try:
            await run_in_threadpool(factory.store.search_runs, limit=1)
        except Exception as err:  # any failure of the store means not ready
            # the kind only: the driver's words can name hosts, roles and SQL (the log has them)
            log.warning("readyz: the store cannot be read: %s", err)
            reason = f"the store cannot be read ({type(err).__name__})"
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        login = "unconfigured"
        if auth.provider is not None:
            try:
                await auth.provider.metadata()
                login = "ready"
            except ProviderUnavailable:
                login = "unreachable"
        return JSONResponse({"status": "ok", "login": login})

    @router.get("/.well-known/oauth-protected-resource", tags=["identity"])
    def resource_metadata(request: Request) -> dict[str, Any]:
        """RFC 9728 protected resource metadata: which provider's tokens this API accepts,
        and the client id `codefactory login` uses there."""
        issuers = [auth.settings.oidc_issuer] if auth.settings.oidc_issuer else []
        return {
            "resource": auth.base_url(request),
            "authorization_servers": issuers,
            "bearer_methods_supported": ["header"],
            "scopes_supported": auth.settings.oidc_scopes.split(),
            "codefactory_cli_client_id": auth.settings.cli_client_id(),
        }

    @router.get("/login", tags=["identity"], response_model=None)
    async def login(
        request: Request, next: Annotated[str, Query(max_length=2000)] = "/"
    ) -> Response:
        """Start the OpenID Connect login; back at `next` (a path of this site) after it."""
        if auth.provider is None:
            return unconfigured()
        try:
            client = await login_client.client()
        except ProviderUnavailable as err:
            return _page(503, "The identity provider cannot be reached", str(err))
        request.session["next"] = _local_path(next)
        redirect_uri = f"{auth.base_url(request)}/auth/callback"
        response: Response = await client.authorize_redirect(request, redirect_uri)
        return response

    @router.get("/auth/callback", tags=["identity"], response_model=None)
    async def callback(request: Request) -> Response:
        """The provider's answer: checked (state, PKCE, nonce, ID token), then a session."""
        return await finish_login(request, auth, login_client)

    @router.get("/logout", tags=["identity"], response_class=HTMLResponse)
    def logout(request: Request) -> HTMLResponse:
        """End this browser's session, on the server too: a copy of its cookie is then
        refused (the provider's own session is the provider's; a bearer token lives until
        its `exp`)."""
        auth.sessions.end(request.session.get("sid"))
        request.session.clear()
        return _page(200, "Logged out", "Your Code Factory session has ended.", login=True)

    @router.get("/api/whoami", tags=["identity"])
    def whoami(person: Annotated[Person, Depends(current_person)]) -> dict[str, Any]:
        """The person the factory takes the caller to be, with their roles."""
        return {
            "id": person.id,
            "actor": person.actor,
            "name": person.name,
            "email": person.email,
            "roles": sorted(role.value for role in person.roles),
        }

    return router


async def finish_login(request: Request, auth: WebAuth, login_client: LoginClient) -> Response:
    """Check the callback (state, PKCE, nonce, the ID token), map its subject to a person,
    start their session and record the `login`; or refuse, with a `login-refused` event."""
    if auth.provider is None:
        return unconfigured()
    state = request.query_params.get("state", "")
    if f"_state_idp_{state}" in request.session and not auth.used_states.use(state):
        text = "this login's state was used already (a replayed callback); start again at /login"
        return await _refused(request, auth, "state-replayed", text)
    try:
        client = await login_client.client()
        token = await client.authorize_access_token(request)
        claims = await auth.provider.verify(str(token.get("id_token", "")))
    except OAuthError as err:  # its `error` may be the caller's own text (`?error=`)
        if err.error == "mismatching_state":
            return await _refused(request, auth, "mismatching_state", _oauth_text(err))
        reason = oauth_reason(err.error)
        code = str(err.error or "")
        return await _refused(request, auth, reason, _oauth_text(err), error=code)
    except TokenRefused as err:
        return await _refused(request, auth, err.reason, f"the ID token is refused: {err}")
    except JoseError as err:
        return await _refused(request, auth, "id-token", f"the ID token is refused: {err}")
    except (ProviderUnavailable, httpx.HTTPError) as err:
        return _page(503, "The identity provider cannot be reached", str(err))
    person = await auth.person_of(request, claims)
    if not isinstance(person, Person):
        return person
    subject = f"{claims['iss']}#{claims['sub']}"
    target = _local_path(str(request.session.pop("next", "/")))
    request.session.clear()
    lifetime = auth.settings.session_lifetime_s
    request.session.update(
        {
            "sid": auth.sessions.start(person.id, lifetime_s=lifetime),
            "person": person.id,
            "subject": subject,
            "expires": int(time.time()) + lifetime,
        }
    )
    await asyncio.to_thread(auth.audit.login, person, subject=subject, method="browser")
    return RedirectResponse(target, status_code=303)


async def _refused(
    request: Request, auth: WebAuth, reason: str, text: str, **facts: str
) -> HTMLResponse:
    state = request.query_params.get("state", "")
    await auth.refuse(request, reason, text, state=state, **facts)
    return _page(400, "Login refused", text, login=True)


def _oauth_text(err: OAuthError) -> str:
    if err.error == "mismatching_state":
        return (
            "the login's state is unknown, used already or expired (a replayed or forged "
            "callback); start again at /login"
        )
    return (
        f"the identity provider refused the login: {capped(str(err.error))}: "
        f"{capped(err.description or '')}"
    )


def _local_path(target: str) -> str:
    """`target` when it is a path of this site, else `/` (no open redirect)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and target.isprintable():
        return target
    return "/"


def _page(status: int, title: str, text: str, *, login: bool = False) -> HTMLResponse:
    again = "<p><a href='/login'>Log in</a></p>" if login else ""
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p>{again}</body></html>"
    )
    return HTMLResponse(body, status_code=status)
