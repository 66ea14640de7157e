"""The forge's name of a canonical repository id, the adapter chosen from `forge.type`, and
a person's own forge token (development map or production token folder)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.review.forges.build import forge_host, user_token
from codefactory.review.forges.errors import NoUserToken
from codefactory.review.forges.github import GitHubHost
from codefactory.review.forges.gitlab import GitLabHost
from codefactory.review.forges.naming import NotPublishable, forge_repository
from codefactory.review.forges.settings import ForgeSettings
from codefactory.secret_files import SecretUnreadable


@pytest.mark.parametrize(
    ("repository", "forge", "name"),
    [
        ("acme/payments", "github", "acme/payments"),
        ("github:acme/payments", "github", "acme/payments"),
        ("gitlab:group/sub/project", "gitlab", "group/sub/project"),
        ("https://git.example.com/acme/x.git", "github", "acme/x"),
        ("https://gitlab.example.com/g/s/p", "gitlab", "g/s/p"),
        ("Project/repo", "azure-devops", "Project/repo"),
    ],
)
def test_canonical_ids_name_their_forge_repository(repository: str, forge: str, name: str) -> None:
    assert forge_repository(repository, forge) == name


@pytest.mark.parametrize(
    ("repository", "forge", "reason"),
    [
        ("local:/srv/payments", "github", "local:"),
        ("gitlab:group/project", "github", "gitlab repository"),
        ("github:acme/payments", "gitlab", "github repository"),
        ("group/sub/project", "github", "owner/name"),
        ("acme/../etc", "github", "segment"),
        ("sentry:payments-api", "github", "unknown kind"),
        ("justone", "gitlab", "group/project"),
    ],
)
def test_ids_without_a_forge_name_are_not_publishable(
    repository: str, forge: str, reason: str
) -> None:
    with pytest.raises(NotPublishable, match=reason):
        forge_repository(repository, forge)


def test_the_adapter_follows_forge_type_and_needs_the_app_token(tmp_path: Path) -> None:
    assert forge_host(Settings(data_dir=tmp_path)) is None
    with pytest.raises(SecretUnreadable):
        forge_host(Settings(data_dir=tmp_path, forge=ForgeSettings(type="github")))
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    for kind, expected in (("github", GitHubHost), ("gitlab", GitLabHost)):
        forge = ForgeSettings(type=kind, token_file=token)  # type: ignore[arg-type]
        built = forge_host(Settings(data_dir=tmp_path, forge=forge))
        assert isinstance(built, expected) and built.kind == kind


def test_github_cloud_and_enterprise_server_have_their_rest_bases() -> None:
    cloud = GitHubHost(ForgeSettings(type="github"), app_token="t")
    server = GitHubHost(
        ForgeSettings(type="github", base_url="https://github.bank.example"), app_token="t"
    )
    assert cloud.http.base_url == "https://api.github.com"
    assert server.http.base_url == "https://github.bank.example/api/v3"
    assert server.remote_url("acme/x") == "https://github.bank.example/acme/x.git"
    gitlab = GitLabHost(ForgeSettings(type="gitlab"), app_token="t")
    assert gitlab.http.base_url == "https://gitlab.com/api/v4"


def test_a_persons_token_comes_from_the_development_map_or_the_token_folder(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "tokens"
    folder.mkdir()
    (folder / "alice.json").write_text(json.dumps({"access_token": "gho_alice"}))
    (folder / "carol.json").write_text(json.dumps({"refresh_token": "only"}))
    forge = ForgeSettings(
        type="github", user_tokens={"priya.shah": "gho_priya"}, user_tokens_dir=folder
    )
    settings = Settings(data_dir=tmp_path, forge=forge)
    assert user_token(settings, "priya.shah") == "gho_priya"
    assert user_token(settings, "alice") == "gho_alice"
    for nobody in ("carol", "dave", "../alice", ""):
        with pytest.raises(NoUserToken) as missing:
            user_token(settings, nobody)
        assert missing.value.kind == "forge-no-user-token"


def test_development_tokens_are_refused_outside_the_development_mode(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from codefactory.identity.settings import IdentitySettings

    forge = ForgeSettings(type="github", user_tokens={"priya.shah": "gho_priya"})
    with pytest.raises(ValidationError, match="development mode only"):
        Settings(data_dir=tmp_path, forge=forge, identity=IdentitySettings(signer="pkcs11"))
    assert Settings(data_dir=tmp_path, forge=forge).forge.user_tokens  # development: allowed


def test_an_id_written_as_an_address_must_be_on_the_configured_forge() -> None:
    assert forge_repository("https://git.bank.example/acme/x.git", "gitlab",
                            hostname="git.bank.example") == "acme/x"  # fmt: skip
    with pytest.raises(NotPublishable, match="a repository on gitlab.evil.example"):
        forge_repository(
            "https://gitlab.evil.example/acme/x", "gitlab", hostname="git.bank.example"
        )


def test_without_an_app_token_the_sponsors_development_token_stands_in(tmp_path: Path) -> None:
    """The development mode's demo needs no app: the factory acts with the sponsor's own
    development token; anyone else, or production without a token file, has none."""
    forge = ForgeSettings(type="github", user_tokens={"priya.shah": "gho_priya"})
    settings = Settings(data_dir=tmp_path, forge=forge)
    built = forge_host(settings, acting_for="priya.shah")
    assert isinstance(built, GitHubHost) and built.push_header().endswith(
        base64.b64encode(b"x-access-token:gho_priya").decode()
    )
    with pytest.raises(SecretUnreadable):
        forge_host(settings, acting_for="jordan.lee")
    assert isinstance(forge_host(settings, lent_token="gho_lent"), GitHubHost)
