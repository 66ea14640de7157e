"""Choosing the forge adapter from settings, and finding a person's own forge token.

`forge.type` picks the class (imported only when chosen): `github` →
`review.forges.github:GitHubHost`, `gitlab` → `review.forges.gitlab:GitLabHost`,
`azure-devops` → `review.forges.azure_devops:AzureDevOpsHost`, `bitbucket` →
`review.forges.bitbucket:BitbucketHost`; each is built as `Class(settings.forge,
app_token=<forge.token_file>)`. `local` has no host: the local bare repository is the forge.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from codefactory.review.forges.grants import UserTokens
from codefactory.secret_files import read_secret

if TYPE_CHECKING:
    from codefactory.config import Settings
    from codefactory.review.port import ForgeHost

ADAPTERS = {
    "github": "codefactory.review.forges.github:GitHubHost",
    "gitlab": "codefactory.review.forges.gitlab:GitLabHost",
    "azure-devops": "codefactory.review.forges.azure_devops:AzureDevOpsHost",
    "bitbucket": "codefactory.review.forges.bitbucket:BitbucketHost",
}


def forge_host(settings: Settings) -> ForgeHost | None:
    """The `ForgeHost` of `settings.forge`, None for `local`. Raises `SecretUnreadable` when
    `forge.token_file` is unset, unreadable or empty (the factory's token is required: it
    pushes and sets statuses)."""
    forge = settings.forge
    if forge.type == "local":
        return None
    module_name, _, class_name = ADAPTERS[forge.type].partition(":")
    host_class = getattr(importlib.import_module(module_name), class_name)
    token = read_secret(forge.token_file, f"{forge.type} app token")
    return cast("ForgeHost", host_class(forge, app_token=token))


def user_token(settings: Settings, person: str) -> str:
    """`person`'s own forge token: `forge.user_tokens[person]` (development mode), else the
    person's OAuth grant in `forge.user_tokens_dir` (review/forges/grants.py), refreshed when
    it has expired. Raises `NoUserToken` when neither has one (never falls back to the app
    token), `GrantRefused` when the forge refuses the refresh."""
    return UserTokens(settings.forge).token_for(person)
