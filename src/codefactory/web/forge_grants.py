"""`/forge/connect` → the forge's consent page → `/forge/callback`, and `/forge/disconnect`:
a signed-in person grants the factory a user token on the forge, so draft requests open
under their own name (review/forges/grants.py).

OAuth 2.0 authorization code with PKCE (S256) and a `state` (RFC 6749 §4.1, RFC 7636, and
RFC 9700's advice): the state, the verifier and the person are kept in the browser's own
signed session cookie for ten minutes and used once; the callback must come back to the same
signed-in person. Each grant stored, refused or removed is an audit event
(`forge-grant-stored`, `forge-grant-refused`, `forge-grant-removed`) that never holds a token.
"""

from __future__ import annotations

import html
import secrets
import time
from collections.abc import Callable
from typing import Annotated, Any

import httpx
from authlib.common.errors import AuthlibBaseError  # type: ignore[import-untyped]
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from codefactory.audit.events import ForgeGrantRefused, ForgeGrantRemoved, ForgeGrantStored
from codefactory.domain import AuditEvent
from codefactory.identity.directory import Person
from codefactory.identity.errors import IdentityError
from codefactory.review.errors import ForgeError
from codefactory.review.forges.grants import GrantStore, endpoints, grant_of, oauth_client
from codefactory.review.forges.settings import ForgeSettings
from codefactory.review.port import ForgeHost
from codefactory.secret_files import SecretUnreadable
from codefactory.web.auth import current_person

STATE_TTL_S = 600.0
_SESSION_KEY = "forge_grant"

Record = Callable[[AuditEvent], object]
"""`record(event)`: one audit event in a transaction of its own (`RunRepository.append`)."""


def forge_grant_router(
    settings: ForgeSettings,
    *,
    base_url: Callable[[Request], str],
    record: Record,
    host: Callable[[str], ForgeHost] | None = None,
    holder_of: Callable[[str], Person | None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> APIRouter:
    """The grant routes; they answer 404 while `forge.oauth.client_id` or
    `forge.user_tokens_dir` is unset (no OAuth grant configured). With `host` (the forge's
    adapter, made with a token lent to read that token's own account) and `holder_of`
    (forge login → the directory person holding it), a token is kept only when the forge
    says it is an account the directory lists for the signed-in person: a sponsor cannot
    connect a second account of their own, whose requests their main account could then
    approve."""
    router = APIRouter(tags=["forge"], include_in_schema=False)  # HTML pages

    def page(status: int, title: str, text: str) -> HTMLResponse:
        body = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Code Factory</title>"
            f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
        )
        return HTMLResponse(body, status_code=status)

    def configured() -> GrantStore | None:
        if not settings.oauth.client_id or settings.user_tokens_dir is None:
            return None
        return GrantStore(settings.user_tokens_dir)

    def refused(person: Person, reason: str) -> HTMLResponse:
        record(
            ForgeGrantRefused(
                actor=person.actor, forge=settings.type, person=person.id, reason=reason[:300]
            )
        )
        return page(400, "The forge grant was not stored", reason)

    @router.get("/forge/connect", response_model=None)
    def connect(
        request: Request, person: Annotated[Person, Depends(current_person)]
    ) -> RedirectResponse | HTMLResponse:
        """Send the signed-in person to the forge to grant the factory a user token."""
        if configured() is None:
            return page(404, "No forge grant", "this factory has no OAuth application on a forge")
        authorize_url, _ = endpoints(settings)
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        redirect = base_url(request) + "/forge/callback"
        with oauth_client(settings, redirect_uri=redirect, transport=transport) as client:
            url, _ = client.create_authorization_url(
                authorize_url, state=state, code_verifier=verifier
            )
        request.session[_SESSION_KEY] = {
            "state": state, "verifier": verifier, "person": person.id, "at": time.time(),
        }  # fmt: skip
        return RedirectResponse(url, status_code=303)

    @router.get("/forge/callback", response_model=None)
    def callback(
        request: Request,
        person: Annotated[Person, Depends(current_person)],
        state: Annotated[str, Query(max_length=200)] = "",
        code: Annotated[str, Query(max_length=2000)] = "",
        error: Annotated[str, Query(max_length=200)] = "",
    ) -> HTMLResponse:
        """The forge's answer: the code is exchanged for the person's token and kept."""
        store = configured()
        if store is None:
            return page(404, "No forge grant", "this factory has no OAuth application on a forge")
        pending: Any = request.session.pop(_SESSION_KEY, None)
        problem = callback_problem(pending, state=state, code=code, error=error, person=person)
        if problem:
            return refused(person, problem)
        _, token_url = endpoints(settings)
        redirect = base_url(request) + "/forge/callback"
        try:
            with oauth_client(settings, redirect_uri=redirect, transport=transport) as client:
                token = client.fetch_token(
                    token_url, code=code, code_verifier=str(pending["verifier"])
                )
            grant = grant_of(person.id, dict(token))
        except AuthlibBaseError as err:
            return refused(person, f"the forge refused the code: {err.error}")
        except (httpx.HTTPError, ValueError) as err:
            return refused(person, f"the forge's token endpoint failed: {err}")
        account = whose_account(grant.access_token, person, host=host, holder_of=holder_of)
        if account:
            return refused(person, account)
        store.save(grant)
        record(ForgeGrantStored(actor=person.actor, forge=settings.type, **grant.described()))
        return page(
            200, "Forge connected", f"requests you sponsor open under your {settings.type} account"
        )

    @router.post("/forge/disconnect")
    def disconnect(person: Annotated[Person, Depends(current_person)]) -> HTMLResponse:
        """Forget the signed-in person's stored grant (revoke it on the forge as well)."""
        store = configured()
        if store is None:
            return page(404, "No forge grant", "this factory has no OAuth application on a forge")
        removed = store.delete(person.id)
        record(
            ForgeGrantRemoved(
                actor=person.actor, forge=settings.type, person=person.id, existed=removed
            )
        )
        return page(200, "Forge disconnected", "the factory no longer holds a token of yours")

    return router


def callback_problem(pending: Any, *, state: str, code: str, error: str, person: Person) -> str:
    """Why a callback cannot be redeemed (empty: it can): the forge's own error, a state this
    browser did not start, another person's grant, one older than `STATE_TTL_S`, no code."""
    if error:
        return f"the forge answered {error}"
    if not isinstance(pending, dict) or not secrets.compare_digest(
        str(pending.get("state", "")), state
    ):
        return "the state does not match a grant this browser started"
    if pending.get("person") != person.id:
        return "the grant was started by another person"
    if time.time() - float(pending.get("at", 0)) > STATE_TTL_S:
        return "the grant was started more than ten minutes ago"
    if not code:
        return "the forge sent no code"
    return ""


def whose_account(
    token: str,
    person: Person,
    *,
    host: Callable[[str], ForgeHost] | None,
    holder_of: Callable[[str], Person | None] | None,
) -> str:
    """Why `token` is not `person`'s own forge account (empty: it is, or no check is
    configured): the forge names the account (`ForgeHost.user_login`), the directory must
    list it for `person`."""
    if host is None or holder_of is None:
        return ""
    try:
        made = host(token)  # lent: only the token's own account is asked
    except SecretUnreadable as err:
        return f"the factory cannot ask the forge whose token it is: {err}"
    try:
        login = made.user_login(token)
    except ForgeError as err:
        return f"the forge could not say whose token it is: {err}"
    finally:
        close = getattr(made, "close", None)
        if callable(close):
            close()
    try:
        holder = holder_of(login)
    except IdentityError as err:  # refused characters in the login
        return f"the forge named an account the directory cannot read: {err}"
    if holder is None or holder.id != person.id:
        return (
            f"the token is of the forge account {login[:100]!r}, which the directory does not "
            f"list for {person.id}: connect your own account"
        )
    return ""
