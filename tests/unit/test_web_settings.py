"""Web settings refuse what would weaken login: a plain-http issuer off this machine, `none`
or HMAC algorithms; the login's `next` never leaves the site."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codefactory.web.auth_audit import oauth_reason, source_of
from codefactory.web.auth_routes import _local_path
from codefactory.web.auth_sessions import SESSIONS_PER_PERSON, SessionStore, UsedStates
from codefactory.web.settings import WebSettings, is_trusted_proxy


@pytest.mark.parametrize(
    "issuer",
    ["http://login.bank.example", "ftp://127.0.0.1", "https://login.bank.example/?x=1", "x"],
)
def test_an_issuer_off_https_or_not_a_url_is_refused(issuer: str) -> None:
    with pytest.raises(ValidationError, match="issuer"):
        WebSettings(oidc_issuer=issuer)


def test_https_and_loopback_issuers_are_taken_without_a_trailing_slash() -> None:
    assert WebSettings(oidc_issuer="https://idp.example/").oidc_issuer == "https://idp.example"
    assert WebSettings(oidc_issuer="http://127.0.0.1:9400").oidc_issuer == "http://127.0.0.1:9400"
    assert WebSettings(oidc_issuer="http://[::1]:9400").oidc_issuer == "http://[::1]:9400"


@pytest.mark.parametrize("algorithms", [("none",), ("RS256", "HS256"), ()])
def test_only_asymmetric_algorithms_are_allowed(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError, match="asymmetric"):
        WebSettings(oidc_algorithms=algorithms)


def test_trusted_hosts_default_to_the_bound_host_and_the_public_url() -> None:
    web = WebSettings(public_url="https://factory.bank.example")
    assert web.hosts_for("10.1.2.3") == [
        "localhost", "127.0.0.1", "10.1.2.3", "factory.bank.example"
    ]  # fmt: skip
    assert web.hosts_for("0.0.0.0") == ["localhost", "127.0.0.1", "factory.bank.example"]
    assert WebSettings(trusted_hosts=("a.example",)).hosts_for("127.0.0.1") == ["a.example"]
    assert WebSettings(oidc_cli_client_id="cli").audiences() == ("codefactory", "cli")


@pytest.mark.parametrize(
    ("target", "kept"),
    [("/api/runs?x=1", "/api/runs?x=1"), ("//evil.example", "/"), ("/\\evil.example", "/"),
     ("https://evil.example", "/"), ("/a\nb", "/")],
)  # fmt: skip
def test_the_login_returns_only_to_a_path_of_this_site(target: str, kept: str) -> None:
    assert _local_path(target) == kept


def test_refusals_are_keyed_by_a_fixed_reason_and_a_bounded_source() -> None:
    assert oauth_reason("invalid_grant") == "invalid_grant"
    assert oauth_reason("evil\nReviewed-by: x") == "provider-error"
    assert oauth_reason(None) == "provider-error"
    assert source_of("2001:db8::1") == source_of("2001:db8::ffff") == "2001:db8::/64"
    assert source_of("::ffff:10.0.0.1") == "10.0.0.1"
    assert source_of("10.0.0.1") == "10.0.0.1" and source_of("x\ny") == "unknown"


def test_a_login_state_is_used_once_and_sessions_end_on_the_server() -> None:
    now = [0.0]
    used = UsedStates(600, clock=lambda: now[0])
    assert used.use("s1") and not used.use("s1") and used.use("s2")
    now[0] = 601
    assert used.use("s1")  # long expired: its cookie's state is refused by then anyway
    sessions = SessionStore(clock=lambda: now[0])
    sid = sessions.start("priya.shah", lifetime_s=60)
    assert sessions.alive(sid, "priya.shah") and not sessions.alive(sid, "raj.patel")
    sessions.end(sid)
    assert not sessions.alive(sid, "priya.shah") and not sessions.alive(None, "priya.shah")
    first = [sessions.start("raj.patel", lifetime_s=60) for _ in range(SESSIONS_PER_PERSON + 1)]
    assert not sessions.alive(first[0], "raj.patel") and sessions.alive(first[-1], "raj.patel")


@pytest.mark.parametrize("proxy", ["0.0.0.0/0", "::/0", "proxy.example", "10.0.0.300"])
def test_a_trusted_proxy_is_an_address_never_everyone(proxy: str) -> None:
    with pytest.raises(ValidationError, match="trusted proxy"):
        WebSettings(trusted_proxies=(proxy,))
    assert is_trusted_proxy("10.0.0.7", ("10.0.0.0/24",))
    assert not is_trusted_proxy("10.0.1.7", ("10.0.0.0/24",))
