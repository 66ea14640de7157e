"""OpenID Connect login against a real provider process (oidc-provider-mock): the browser's
code flow through a live server, bearer tokens, and every forged, expired or replayed login
refused with an audit event."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from codefactory.config import Settings
from codefactory.factory import Factory, build_factory
from codefactory.web.app import create_app
from codefactory.web.auth_audit import LoginAudit
from tests.conftest import asgi_get
from tests.directory_helpers import standard_people, write_directory
from tests.oidc_helpers import (
    OidcProvider,
    bearer,
    live_server,
    oidc_settings,
    submit_authorization,
    web_headers,
)
from tests.postgres_store import sqlite_store_only

HTML = {"Accept": "text/html"}


@pytest.fixture
def factory(tmp_path: Path, oidc_provider: OidcProvider) -> Factory:
    extra = oidc_settings(oidc_provider, tmp_path / "people")
    return build_factory(Settings(data_dir=tmp_path / "data", **extra))


def events(factory: Factory, name: str) -> list[dict[str, Any]]:
    return [
        {"actor": record.actor, **record.data}
        for record in factory.audit.events()
        if record.name == name
    ]


def browser_login(client: httpx.Client, sub: str, path: str = "/") -> httpx.Response:
    """From `path` to the provider and back: returns the answer to the callback."""
    start = client.get(path, headers=HTML)
    assert start.status_code == 303 and start.headers["location"].startswith("/login?next=")
    to_provider = client.get(start.headers["location"])
    assert to_provider.status_code == 302
    callback = submit_authorization(to_provider.headers["location"], sub)
    return client.get(callback)


def test_a_person_logs_in_through_the_provider(factory: Factory) -> None:
    with live_server(create_app(factory)) as url, httpx.Client(base_url=url) as client:
        before = dict(client.cookies)
        to_provider = client.get("/login?next=/api/whoami")
        callback = submit_authorization(to_provider.headers["location"], "priya")
        cookies_at_callback = dict(client.cookies)
        done = client.get(callback)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/api/whoami"
        me = client.get("/api/whoami").json()
        assert me["id"] == "priya.shah" and me["actor"] == "user:priya.shah"
        assert client.get("/", headers=HTML).status_code == 200

        # the same callback again, with the session of now or of before it: refused
        assert client.get(callback).status_code == 400
        with httpx.Client(base_url=url, cookies=cookies_at_callback) as replayer:
            replay = replayer.get(callback)
        assert replay.status_code == 400 and "replayed" in replay.text
        with httpx.Client(base_url=url, cookies=before) as stranger:
            assert stranger.get(callback).status_code == 400

        # taken out of the directory: the session ends at the next request
        assert factory.settings.identity.directory_file is not None
        write_directory(factory.settings.identity.directory_file, standard_people())
        removed = client.get("/api/whoami")
        assert removed.status_code == 403 and "no person" in removed.text
        assert client.get("/logout").status_code == 200
        after = client.get("/api/whoami")
        assert after.status_code == 401 and after.headers["www-authenticate"].startswith("Bearer")

    logins = events(factory, "login")
    assert [(e["actor"], e["method"]) for e in logins] == [("user:priya.shah", "browser")]
    refused = events(factory, "login-refused")
    assert {e["reason"] for e in refused} == {
        "mismatching_state",
        "state-replayed",
        "unknown-subject",
    }
    assert refused[0]["count"] == 1


def test_a_wrong_nonce_or_an_unknown_subject_is_refused(
    factory: Factory, oidc_provider: OidcProvider
) -> None:
    oidc_provider.set_claims("nonce-thief", {"nonce": "someone-elses"})
    with live_server(create_app(factory)) as url, httpx.Client(base_url=url) as client:
        stolen = browser_login(client, "nonce-thief")
        assert stolen.status_code == 400 and "nonce" in stolen.text
        stranger = browser_login(client, "stranger")
        assert stranger.status_code == 403
        assert f"{oidc_provider.issuer}#stranger" in stranger.json()["detail"]
        # a code obtained elsewhere (another client's login), injected with this login's state
        stolen = oidc_provider.authorize("priya", nonce="someone-elses", verifier="v" * 64)
        to_provider = client.get("/login").headers["location"]
        state = httpx.URL(to_provider).params["state"]
        injected = client.get(f"/auth/callback?code={stolen}&state={state}")
        assert injected.status_code == 400 and "Login refused" in injected.text
        assert client.get("/api/whoami").status_code == 401
    reasons = {e["reason"] for e in events(factory, "login-refused")}
    assert reasons == {"id-token", "unknown-subject", "invalid_grant"}
    assert events(factory, "login") == []


def test_bearer_tokens_are_checked(factory: Factory, oidc_provider: OidcProvider) -> None:
    app = create_app(factory)
    assert asgi_get(app, "/readyz").json() == {"status": "ok", "login": "ready"}
    good = asgi_get(app, "/api/whoami", web_headers(oidc_provider))
    assert good.status_code == 200 and good.json()["id"] == "priya.shah"
    assert asgi_get(app, "/api/runs", web_headers(oidc_provider)).status_code == 200

    missing = asgi_get(app, "/api/runs")
    assert missing.status_code == 401
    assert "/.well-known/oauth-protected-resource" in missing.headers["www-authenticate"]
    assert asgi_get(app, "/", HTML).status_code == 303  # a browser goes to /login

    oidc_provider.set_claims("expired", {"exp": int(time.time()) - 3600})
    oidc_provider.set_claims("elsewhere", {"aud": "another-client"})
    forged = forge(oidc_provider, "priya")
    refused = {
        "expired": oidc_provider.id_token("expired"),
        "audience": oidc_provider.id_token("elsewhere"),
        "signature": forged,
        "algorithm": jwt.encode({"sub": "priya"}, "k" * 32, algorithm="HS256"),
        "malformed": "not-a-token",
    }
    for reason, token in refused.items():
        answer = asgi_get(app, "/api/whoami", bearer(token))
        assert answer.status_code == 401, reason
        assert 'error="invalid_token"' in answer.headers["www-authenticate"], reason
    unknown = asgi_get(app, "/api/whoami", bearer(oidc_provider.id_token("nobody")))
    assert unknown.status_code == 403 and "no person in the factory's directory" in unknown.text

    for _ in range(20):  # a flood: one event per source and reason per minute
        asgi_get(app, "/api/runs", bearer("not-a-token"))
    seen = events(factory, "login-refused")
    assert sorted(e["reason"] for e in seen) == sorted([*refused, "unknown-subject"])
    assert all(len(str(e)) < 2000 for e in seen)
    logins = events(factory, "login")
    assert [(e["actor"], e["method"]) for e in logins] == [("user:priya.shah", "bearer")]


def test_refusals_are_counted_per_source_and_reason_per_minute(factory: Factory) -> None:
    now = [1000.0]
    tally = LoginAudit(factory.audit, clock=lambda: now[0])
    for _ in range(50):
        tally.refused("10.0.0.1", "expired", "x" * 100_000, token="t" * 100_000)
    tally.refused("10.0.0.2", "expired")
    now[0] += 61
    tally.refused("10.0.0.1", "signature")
    # a caller's word is never a key: outside the vocabulary it is `other`; IPv6 by its /64
    tally.refused("2001:db8::1", "evil\nReviewed-by: x", "y" * 10_000, error="z" * 10_000)
    tally.refused("2001:db8::2", "another-new-word")
    tally.flush()
    seen = [(e["source"], e["reason"], e["count"]) for e in events(factory, "login-refused")]
    assert seen == [
        ("10.0.0.1", "expired", 1),
        ("10.0.0.2", "expired", 1),
        ("10.0.0.1", "signature", 1),
        ("10.0.0.1", "expired", 49),
        ("2001:db8::/64", "other", 1),
        ("2001:db8::/64", "other", 1),
    ]
    assert max(len(str(e)) for e in events(factory, "login-refused")) < 1000


def test_without_a_provider_only_the_public_routes_answer(tmp_path: Path) -> None:
    factory = build_factory(Settings(data_dir=tmp_path / "data"))
    app = create_app(factory)
    closed = asgi_get(app, "/api/runs")
    assert closed.status_code == 401 and "CODEFACTORY_WEB__OIDC_ISSUER" in closed.text
    assert asgi_get(app, "/", HTML).status_code == 401
    assert asgi_get(app, "/openapi.json").status_code == 401
    assert asgi_get(app, "/readyz").json()["login"] == "unconfigured"
    for public in ("/healthz", "/readyz", "/.well-known/jwks.json"):
        assert asgi_get(app, public).status_code == 200, public
    assert (tmp_path / "data" / "web-session.key").stat().st_mode & 0o777 == 0o600


def test_only_trusted_hosts_are_answered(factory: Factory) -> None:
    app = create_app(factory)
    assert asgi_get(app, "/healthz", {"Host": "evil.example"}).status_code == 400
    assert asgi_get(app, "/healthz", {"Host": "127.0.0.1:8000"}).status_code == 200


def forge(provider: OidcProvider, sub: str) -> str:
    """A token with every claim right, the provider's key id, and another key's signature."""
    kid = httpx.get(f"{provider.issuer}/jwks").json()["keys"][0].get("kid")
    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": "codefactory", "sub": sub, "iat": now,
              "exp": now + 600}  # fmt: skip
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid} if kid else None)


def test_logout_ends_the_session_on_the_server(factory: Factory) -> None:
    with live_server(create_app(factory)) as url, httpx.Client(base_url=url) as client:
        assert browser_login(client, "priya").status_code == 303
        cookie = client.cookies["codefactory_session"]
        assert client.get("/api/whoami").status_code == 200
        assert client.get("/logout").status_code == 200
        with httpx.Client(base_url=url, cookies={"codefactory_session": cookie}) as replayer:
            replayed = replayer.get("/api/whoami")
        assert replayed.status_code == 401, "a cookie from before /logout still works"
    assert "session-ended" in {e["reason"] for e in events(factory, "login-refused")}


def test_anonymous_logins_cannot_push_out_a_login_in_progress(factory: Factory) -> None:
    with live_server(create_app(factory)) as url, httpx.Client(base_url=url) as victim:
        to_provider = victim.get("/login?next=/api/whoami")
        callback = submit_authorization(to_provider.headers["location"], "priya")
        with httpx.Client(base_url=url) as stranger:
            for _ in range(30):  # each anonymous /login keeps its state in its own cookie
                stranger.cookies.clear()
                assert stranger.get("/login").status_code == 302
        assert victim.get(callback).status_code == 303
        assert victim.get("/api/whoami").json()["id"] == "priya.shah"


def test_a_flood_of_provider_errors_costs_a_few_bounded_events(factory: Factory) -> None:
    with live_server(create_app(factory)) as url, httpx.Client(base_url=url) as client:
        for n in range(40):
            error = f"x{n}" + "A" * 4000
            assert client.get("/auth/callback", params={"error": error}).status_code == 400
        evil = "evil\nReviewed-by: mallory\x1b[31m[/x][bold red]PWNED"
        assert client.get("/auth/callback", params={"error": evil}).status_code == 400
        assert client.get("/auth/callback", params={"error": "access_denied"}).status_code == 400
    seen = events(factory, "login-refused")
    # the first of each reason at once, the other 40 as one count when the app stops
    assert [(e["reason"], e["count"]) for e in seen] == [
        ("provider-error", 1), ("access_denied", 1), ("provider-error", 40)
    ]  # fmt: skip
    assert all(len(str(e)) < 2000 for e in seen)
    assert not any(ch in str(e) for e in seen for ch in "\n\x1b")


@sqlite_store_only  # the SQLite file replaced by a folder
def test_readyz_says_the_store_is_down_without_the_drivers_words(tmp_path: Path) -> None:
    factory = build_factory(Settings(data_dir=tmp_path / "data"))
    app = create_app(factory)
    factory.store.engine.dispose()
    database = tmp_path / "data" / "factory.db"
    database.rename(tmp_path / "elsewhere.db")
    database.mkdir()  # the file replaced by a folder: SQLite cannot open it
    answer = asgi_get(app, "/readyz")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "unavailable",
        "reason": "the store cannot be read (OperationalError)",
    }
