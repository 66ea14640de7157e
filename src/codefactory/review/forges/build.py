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


def forge_host(
    settings: Settings, *, acting_for: str = "", lent_token: str = ""
) -> ForgeHost | None:
    """The `ForgeHost` of `settings.forge`, None for `local`. The factory's own calls (push,
    status, SARIF, protection, confirmation) go with `forge.token_file`, the app or bot
    token. In the development mode, without a token file, the development token
    (`forge.user_tokens`) of the person the factory acts for (`acting_for`: the run's
    sponsor) stands in, so a demo needs no app; `lent_token` is a token a caller lends for
    calls that only read that token's own account (`user_login`). Raises `SecretUnreadable`
    when none is there (or the file is unreadable or empty)."""
    forge = settings.forge
    if forge.type == "local":
        return None
    module_name, _, class_name = ADAPTERS[forge.type].partition(":")
    host_class = getattr(importlib.import_module(module_name), class_name)
    lent = lent_token or (forge.user_tokens.get(acting_for, "").strip() if acting_for else "")
    if forge.token_file is None and lent:
        token = lent
    else:
        token = read_secret(forge.token_file, f"{forge.type} app token")
    return cast("ForgeHost", host_class(forge, app_token=token))


def user_token(settings: Settings, person: str) -> str:
    """`person`'s own forge token: `forge.user_tokens[person]` (development mode), else the
    person's OAuth grant in `forge.user_tokens_dir` (review/forges/grants.py), refreshed when
    it has expired. Raises `NoUserToken` when neither has one (never falls back to the app
    token), `GrantRefused` when the forge refuses the refresh."""
    return UserTokens(settings.forge).token_for(person)
