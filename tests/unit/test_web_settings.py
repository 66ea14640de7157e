"""Web settings refuse what would weaken login: a plain-http issuer off this machine, `none`
or HMAC algorithms; the login's `next` never leaves the site."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codefactory.web.auth_routes import _local_path
from codefactory.web.settings import WebSettings


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
