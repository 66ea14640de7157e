"""The SCIM 2.0 directory (`identity/directory_scim.py`) against a real HTTP server on
127.0.0.1 (`tests/scim_server.py`) answering RFC 7644 ListResponse pages: mapping, paging,
inactive users, the TTL, and every way the server or its data can be wrong (fail closed)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from codefactory.config import Settings
from codefactory.identity.directory import FileDirectory, IdentityKind, Role
from codefactory.identity.directory_scim import ScimDirectory
from codefactory.identity.errors import DirectoryInvalid
from codefactory.identity.services import directory_for
from codefactory.identity.settings import IdentitySettings
from tests.directory_helpers import DIRECTORY_ENV
from tests.scim_server import ScimApp, scim_server, user

TOKEN = "s3cr3t-scim-token-value"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0b3RhbGx5LW5vdC1hLXJlYWwta2V5LWJ1dC1maW5l priya"


def people() -> list[dict[str, Any]]:
    priya = user(
        "Priya.Shah",
        display="Priya Shah",
        roles=["sponsor", "chief-wizard"],
        emails=[
            {"value": "p.shah@old.example", "type": "home"},
            {"value": "priya.shah@bank.example", "type": "work", "primary": True},
        ],
        identities={"github": ["Priya-Shah"], "jira": ["5b10a2844c20165700ede21g"]},
        ssh_keys=[KEY],
    )
    sam = user("sam.okafor", roles=["reviewer", "security"], identities={"github": ["sokafor"]})
    sam["name"] = {"formatted": "Sam Okafor", "givenName": "Sam"}
    gone = user("old.timer", roles=["reviewer"], active=False, identities={"github": ["sokafor"]})
    return [priya, gone, sam]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "scim.token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def app() -> ScimApp:
    return ScimApp(token=TOKEN, users=people())


@pytest.fixture
def base(app: ScimApp) -> Iterator[str]:
    with scim_server(app) as url:
        yield url


def scim(base: str, token_file: Path, **options: Any) -> ScimDirectory:
    return ScimDirectory(base, token_file=token_file, **options)


def test_users_map_to_people(
    base: str, app: ScimApp, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = scim(base, token_file)
    with caplog.at_level(logging.WARNING):
        priya = directory.resolve(IdentityKind.GITHUB, "priya-shah")
    assert priya is not None
    assert priya.id == "priya.shah"
    assert priya.name == "Priya Shah"
    assert priya.email == "priya.shah@bank.example"  # the primary one
    assert priya.roles == frozenset({Role.SPONSOR})  # `chief-wizard` ignored, with a warning
    assert "chief-wizard" in caplog.text and TOKEN not in caplog.text
    assert priya.ssh_keys == (KEY,)
    assert directory.person("user:PRIYA.SHAH") == priya
    sam = directory.resolve(IdentityKind.GITHUB, "SOKAFOR")
    assert sam is not None and sam.name == "Sam Okafor"  # name.formatted
    assert sam.roles == frozenset({Role.REVIEWER, Role.SECURITY})
    assert [person.id for person in directory.people()] == ["priya.shah", "sam.okafor"]
    assert directory.resolve(IdentityKind.GITLAB, "priya-shah") is None
    assert directory.person("nobody") is None
    # one listing, with the RFC 7644 filter and paging parameters
    assert app.requests == [{"filter": ["active eq true"], "startIndex": ["1"], "count": ["100"]}]


def test_pages_are_followed_until_total_results(base: str, app: ScimApp, token_file: Path) -> None:
    app.users.append(user("jordan.lee", identities={"servicenow": ["jordan.lee"]}))
    directory = scim(base, token_file, page_size=2)
    assert [person.id for person in directory.people()] == [
        "jordan.lee",
        "priya.shah",
        "sam.okafor",
    ]
    assert [(q["startIndex"], q["count"]) for q in app.requests] == [(["1"], ["2"]), (["3"], ["2"])]


def test_an_inactive_user_is_absent_even_when_the_server_ignores_the_filter(
    token_file: Path,
) -> None:
    app = ScimApp(token=TOKEN, users=people(), apply_filter=False)
    with scim_server(app) as url:
        directory = scim(url, token_file, page_size=2)
        assert directory.person("old.timer") is None
        sam = directory.resolve(IdentityKind.GITHUB, "sokafor")  # not a duplicate: inactive
        assert sam is not None and sam.id == "sam.okafor"
        assert len(app.requests) == 2


def test_a_refused_token_names_the_url_and_never_the_token(base: str, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-token")
    with pytest.raises(DirectoryInvalid, match=r"/scim/v2/Users: answered HTTP 401") as caught:
        scim(base, wrong).people()
    assert "not-the-token" not in str(caught.value) and TOKEN not in str(caught.value)
    with pytest.raises(DirectoryInvalid, match="token file"):
        scim(base, tmp_path / "missing.token").people()


def test_a_server_that_is_down_is_an_error(token_file: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/scim/v2"
    with pytest.raises(DirectoryInvalid, match=rf"{port}/scim/v2/Users: cannot reach the server"):
        scim(url, token_file, timeout_s=2).resolve(IdentityKind.GITHUB, "sokafor")


def test_one_identity_claimed_by_two_people_is_an_error(
    base: str, app: ScimApp, token_file: Path
) -> None:
    app.users.append(user("sam.twin", identities={"github": ["SOKAFOR"]}))
    with pytest.raises(DirectoryInvalid, match="github identity 'sokafor' belongs to both"):
        scim(base, token_file).people()
    app.users[-1] = user("Sam.Okafor")  # the same person id after case folding
    with pytest.raises(DirectoryInvalid, match="'sam.okafor' is listed twice"):
        scim(base, token_file).people()


@pytest.mark.parametrize(
    ("user_name", "message"),
    [
        ("priya\u200bshah", r"U\+200B"),
        ("priya shah", "a person id is lower case"),
        ("", "empty"),
    ],
)
def test_refused_characters_in_user_name_are_an_error(
    base: str, app: ScimApp, token_file: Path, user_name: str, message: str
) -> None:
    app.users.append(user(user_name))
    with pytest.raises(DirectoryInvalid, match=message) as caught:
        scim(base, token_file).people()
    assert "/scim/v2/Users" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda u: u.update(emails="x"), "`emails` is not a list"),
        (lambda u: u.update(roles=[{"display": "x"}]), "no string `value`"),
        (lambda u: u.update(schemas=["urn:other"]), "not a SCIM User"),
        (lambda u: u[u["schemas"][1]]["identities"].update(fax=["1"]), "'fax'"),
        (lambda u: u[u["schemas"][1]].update(sshKeys=["not a key"]), "not an OpenSSH"),
        (lambda u: u[u["schemas"][1]].update(groups=[]), "unknown .* keys"),
    ],
)
def test_malformed_users_are_an_error(
    base: str, app: ScimApp, token_file: Path, change: Any, message: str
) -> None:
    change(app.users[0])
    with pytest.raises(DirectoryInvalid, match=message):
        scim(base, token_file).people()


def test_an_answer_that_is_not_a_list_response_is_an_error(
    base: str, app: ScimApp, token_file: Path
) -> None:
    app.override = {"schemas": ["urn:nope"], "totalResults": 1}
    with pytest.raises(DirectoryInvalid, match="not a SCIM ListResponse"):
        scim(base, token_file).people()
    app.override = {"schemas": [app.list_schema], "totalResults": 5, "Resources": []}
    with pytest.raises(DirectoryInvalid, match="empty but totalResults is 5"):
        scim(base, token_file).people()


def test_the_set_is_cached_for_the_ttl_then_fetched_again_and_never_served_stale(
    base: str, app: ScimApp, token_file: Path
) -> None:
    clock = Clock()
    directory = scim(base, token_file, ttl_s=60, clock=clock)
    assert directory.person("sam.okafor") is not None
    app.users = [item for item in app.users if item["userName"] != "sam.okafor"]
    clock.now += 59
    assert directory.person("sam.okafor") is not None  # within the TTL: one listing
    assert len(app.requests) == 1
    clock.now += 1
    assert directory.person("sam.okafor") is None  # fetched again
    assert len(app.requests) == 2
    token_file.write_text("rotated-away")
    clock.now += 60
    with pytest.raises(DirectoryInvalid, match="401"):
        directory.person("priya.shah")
    with pytest.raises(DirectoryInvalid):  # nobody is known, not the last good set
        directory.person("priya.shah")


def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **identity: Any) -> Settings:
    monkeypatch.delenv(DIRECTORY_ENV, raising=False)
    return Settings(data_dir=tmp_path / "data", identity=IdentitySettings(**identity))


def test_directory_for_picks_scim_when_the_url_is_set(
    tmp_path: Path, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "https://idm.bank.example/scim/v2"
    chosen = directory_for(
        settings(
            tmp_path,
            monkeypatch,
            directory_scim_url=url,
            directory_scim_token_file=token_file,
            directory_ttl_s=5,
        )
    )
    assert isinstance(chosen, ScimDirectory)
    assert chosen.users_url == f"{url}/Users" and chosen.ttl_s == 5
    assert isinstance(directory_for(settings(tmp_path, monkeypatch)), FileDirectory)
    with pytest.raises(DirectoryInvalid, match="both identity.directory_file and"):
        directory_for(
            settings(
                tmp_path,
                monkeypatch,
                directory_file=tmp_path / "d.toml",
                directory_scim_url=url,
                directory_scim_token_file=token_file,
            )
        )
    with pytest.raises(DirectoryInvalid, match="directory_scim_token_file is unset"):
        directory_for(settings(tmp_path, monkeypatch, directory_scim_url=url))
    inside = tmp_path / "data" / "scim.token"
    with pytest.raises(DirectoryInvalid, match="inside the data folder"):
        directory_for(
            settings(
                tmp_path, monkeypatch, directory_scim_url=url, directory_scim_token_file=inside
            )
        )


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://idm.bank.example/scim/v2", True),
        ("http://127.0.0.1:8080/scim/v2", True),
        ("http://[::1]/scim", True),
        ("http://localhost/scim", True),
        ("http://idm.bank.example/scim/v2", False),
        ("ftp://idm.bank.example/scim", False),
        ("https://idm.bank.example/scim?x=1", False),
        ("https://user@idm.bank.example/scim", False),
    ],
)
def test_the_scim_url_is_https_or_loopback_http(url: str, accepted: bool) -> None:
    if accepted:
        assert IdentitySettings(directory_scim_url=url).directory_scim_url == url
    else:
        with pytest.raises(ValidationError, match="directory_scim_url"):
            IdentitySettings(directory_scim_url=url)
