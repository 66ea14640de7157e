"""A person grants the factory a user token on the forge (authorization code + PKCE against
a GitHub OAuth stand-in), the grant is kept 0600 and audited without the token, refreshed
when it expires, and every bad callback is refused and audited."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from codefactory.config import Settings
from codefactory.domain import AuditEvent
from codefactory.factory import build_factory
from codefactory.identity.directory import Person, Role
from codefactory.review.forges.errors import NoUserToken
from codefactory.review.forges.grants import GrantRefused, GrantStore, UserTokens
from codefactory.review.forges.settings import ForgeOAuthSettings, ForgeSettings
from codefactory.web.app import create_app
from codefactory.web.forge_grants import forge_grant_router
from tests.forge_oauth_standin import CLIENT_ID, CLIENT_SECRET, OAuthStandin, oauth_standin
from tests.oidc_helpers import OidcProvider, oidc_settings, web_headers

__all__ = ["oauth_standin"]

PEOPLE = {
    "priya.shah": Person(id="priya.shah", name="Priya Shah", email="p@example.com",
                         roles=frozenset({Role.SPONSOR})),
    "mark.chen": Person(id="mark.chen", name="Mark Chen", email="m@example.com",
                        roles=frozenset({Role.REVIEWER})),
}  # fmt: skip


class SignedIn:
    """Stands in for the login gate (tested in test_identity_web.py): the person named by
    the `x-person` header is signed in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            name = Request(scope).headers.get("x-person", "")
            if name in PEOPLE:
                scope.setdefault("state", {})["person"] = PEOPLE[name]
        await self.app(scope, receive, send)


@pytest.fixture
def forge(tmp_path: Path, oauth_standin: OAuthStandin) -> ForgeSettings:
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET)
    return ForgeSettings(
        type="github",
        base_url=oauth_standin.url,
        user_tokens_dir=tmp_path / "grants",
        oauth=ForgeOAuthSettings(client_id=CLIENT_ID, client_secret_file=secret),
    )


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def client(forge: ForgeSettings, events: list[dict[str, Any]]) -> Iterator[TestClient]:
    def record(event: AuditEvent) -> None:
        events.append({"name": event.name, "actor": event.actor, **event.data})

    app = FastAPI()
    app.include_router(
        forge_grant_router(forge, base_url=lambda r: str(r.base_url).rstrip("/"), record=record)
    )
    app.add_middleware(SignedIn)
    app.add_middleware(SessionMiddleware, secret_key="test-session-secret")
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client


def consent(client: TestClient, person: str) -> Any:
    """Start the grant as `person`, let the forge consent, and bring its redirect back."""
    started = client.get("/forge/connect", headers={"x-person": person})
    assert started.status_code == 303, started.text
    at_forge = httpx.get(started.headers["location"], follow_redirects=False)
    assert at_forge.status_code == 302, at_forge.text
    back = httpx.URL(at_forge.headers["location"])
    assert back.host == "testserver" and back.path == "/forge/callback"
    return client.get(f"{back.path}?{back.query.decode()}", headers={"x-person": person})


def test_a_grant_is_kept_0600_audited_without_the_token_and_used(
    client: TestClient, forge: ForgeSettings, oauth_standin: OAuthStandin, events: list[Any]
) -> None:
    answer = consent(client, "priya.shah")
    assert answer.status_code == 200, answer.text
    issued = oauth_standin.issued[-1]
    kept = forge.user_tokens_dir / "priya.shah.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    assert UserTokens(forge).token_for("priya.shah") == issued["access_token"]
    authorize = next(q for m, p, q in oauth_standin.requests if p.endswith("/authorize"))
    assert authorize["code_challenge_method"] == ["S256"]  # PKCE, checked by the stand-in
    [stored] = [e for e in events if e["name"] == "forge-grant-stored"]
    assert stored["person"] == "priya.shah" and stored["actor"] == "user:priya.shah"
    text = repr(events)
    assert issued["access_token"] not in text and issued["refresh_token"] not in text


def test_an_expired_token_is_refreshed_and_the_rotated_refresh_token_kept(
    client: TestClient, forge: ForgeSettings, oauth_standin: OAuthStandin
) -> None:
    assert consent(client, "priya.shah").status_code == 200
    first = oauth_standin.issued[-1]
    tokens = UserTokens(forge)
    later = first["expires_in"] + 10_000_000_000.0  # far past the expiry
    fresh = tokens.token_for("priya.shah", now=later)
    assert fresh != first["access_token"]
    assert oauth_standin.issued[-1]["grant_type"] == "refresh_token"
    grant = GrantStore(forge.user_tokens_dir).load("priya.shah")
    assert grant is not None and grant.refresh_token == oauth_standin.issued[-1]["refresh_token"]
    oauth_standin.refresh_tokens.clear()  # the forge revoked it
    with pytest.raises(GrantRefused, match="bad_refresh_token"):
        tokens.token_for("priya.shah", now=later * 2)


def test_a_person_without_a_grant_has_no_token(forge: ForgeSettings) -> None:
    with pytest.raises(NoUserToken, match="mark.chen has no github token"):
        UserTokens(forge).token_for("mark.chen")
    development = forge.model_copy(update={"user_tokens": {"mark.chen": "ghu_dev"}})
    assert UserTokens(development).token_for("mark.chen") == "ghu_dev"


def test_a_callback_with_another_state_or_person_is_refused_and_audited(
    client: TestClient, forge: ForgeSettings, oauth_standin: OAuthStandin, events: list[Any]
) -> None:
    started = client.get("/forge/connect", headers={"x-person": "priya.shah"})
    at_forge = httpx.get(started.headers["location"], follow_redirects=False)
    back = httpx.URL(at_forge.headers["location"])
    code = back.params["code"]
    forged = client.get(
        f"/forge/callback?code={code}&state=not-the-state", headers={"x-person": "priya.shah"}
    )
    assert forged.status_code == 400 and "does not match" in forged.text
    # the state was used once: the genuine callback after a refusal is refused too
    again = client.get(f"{back.path}?{back.query.decode()}", headers={"x-person": "priya.shah"})
    assert again.status_code == 400
    # a grant started by one person cannot be finished by another
    client.get("/forge/connect", headers={"x-person": "priya.shah"})
    other = consent_as_other(client, oauth_standin)
    assert other.status_code == 400 and "another person" in other.text
    refused = [e for e in events if e["name"] == "forge-grant-refused"]
    assert len(refused) == 3
    assert not (forge.user_tokens_dir / "priya.shah.json").exists()
    assert not (forge.user_tokens_dir / "mark.chen.json").exists()


def consent_as_other(client: TestClient, oauth_standin: OAuthStandin) -> Any:
    started = client.get("/forge/connect", headers={"x-person": "priya.shah"})
    at_forge = httpx.get(started.headers["location"], follow_redirects=False)
    back = httpx.URL(at_forge.headers["location"])
    return client.get(f"{back.path}?{back.query.decode()}", headers={"x-person": "mark.chen"})


def test_a_code_the_forge_refuses_and_a_denied_consent_are_refused(
    client: TestClient, forge: ForgeSettings, oauth_standin: OAuthStandin, events: list[Any]
) -> None:
    started = client.get("/forge/connect", headers={"x-person": "priya.shah"})
    at_forge = httpx.get(started.headers["location"], follow_redirects=False)
    back = httpx.URL(at_forge.headers["location"])
    oauth_standin.codes.clear()  # the code expired at the forge
    answer = client.get(f"{back.path}?{back.query.decode()}", headers={"x-person": "priya.shah"})
    assert answer.status_code == 400 and "bad_verification_code" in answer.text
    client.get("/forge/connect", headers={"x-person": "priya.shah"})
    denied = client.get(
        "/forge/callback?error=access_denied&state=x", headers={"x-person": "priya.shah"}
    )
    assert denied.status_code == 400 and "access_denied" in denied.text
    assert [e["name"] for e in events] == ["forge-grant-refused", "forge-grant-refused"]


def test_disconnect_forgets_the_grant(
    client: TestClient, forge: ForgeSettings, events: list[Any]
) -> None:
    assert consent(client, "priya.shah").status_code == 200
    gone = client.post("/forge/disconnect", headers={"x-person": "priya.shah"})
    assert gone.status_code == 200
    with pytest.raises(NoUserToken):
        UserTokens(forge).token_for("priya.shah")
    assert events[-1]["name"] == "forge-grant-removed" and events[-1]["existed"] is True


def test_without_an_oauth_application_the_routes_say_so(tmp_path: Path) -> None:
    app = FastAPI()
    app.include_router(
        forge_grant_router(ForgeSettings(type="github"), base_url=lambda r: "", record=print)
    )
    app.add_middleware(SignedIn)
    app.add_middleware(SessionMiddleware, secret_key="s")
    with TestClient(app) as test_client:
        answer = test_client.get("/forge/connect", headers={"x-person": "priya.shah"})
    assert answer.status_code == 404


def test_the_factory_serves_the_grant_behind_its_login(
    tmp_path: Path, oidc_provider: OidcProvider, oauth_standin: OAuthStandin
) -> None:
    """In the real app: no login, no grant; a signed-in person is sent to the forge with
    PKCE and a state, and the grant is audited in the factory's own log."""
    extra = oidc_settings(oidc_provider, tmp_path / "people")
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET)
    app_token = tmp_path / "app-token"
    app_token.write_text("ghs_app_token_for_tests")
    forge = ForgeSettings(
        type="github",
        base_url=oauth_standin.url,
        token_file=app_token,
        user_tokens_dir=tmp_path / "grants",
        oauth=ForgeOAuthSettings(client_id=CLIENT_ID, client_secret_file=secret),
    )
    oauth_standin.login = "mallory-second-account"  # an account the directory does not list
    factory = build_factory(Settings(data_dir=tmp_path / "data", forge=forge, **extra))
    app = create_app(factory)
    with TestClient(app, base_url="http://127.0.0.1", follow_redirects=False) as client:
        assert client.get("/forge/connect").status_code in (302, 303, 401)  # to the login
        started = client.get("/forge/connect", headers=web_headers(oidc_provider))
        assert started.status_code == 303
        authorize = httpx.URL(started.headers["location"])
        assert authorize.path == "/login/oauth/authorize"
        assert authorize.params["code_challenge_method"] == "S256"
        assert authorize.params["redirect_uri"] == "http://127.0.0.1/forge/callback"
        back = httpx.URL(httpx.get(str(authorize)).headers["location"])
        refused = client.get(
            f"{back.path}?{back.query.decode()}", headers=web_headers(oidc_provider)
        )
        assert refused.status_code == 400 and "does not list for priya.shah" in refused.text
        assert not (tmp_path / "grants" / "priya.shah.json").exists()
        oauth_standin.login = "Codertocat"  # priya.shah's own GitHub account
        started = client.get("/forge/connect", headers=web_headers(oidc_provider))
        back = httpx.URL(httpx.get(started.headers["location"]).headers["location"])
        done = client.get(f"{back.path}?{back.query.decode()}", headers=web_headers(oidc_provider))
        assert done.status_code == 200, done.text
    [stored] = [e for e in factory.audit.events() if e.name == "forge-grant-stored"]
    person = stored.data["person"]
    assert UserTokens(forge).token_for(person) == oauth_standin.issued[-1]["access_token"]
