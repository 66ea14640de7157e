"""Settings of the forge (`forge.*`): which one, where, and with which credentials.

`CODEFACTORY_FORGE__TYPE` selects it (`local`, the embedded default, `github`, `gitlab`,
`azure-devops`, `bitbucket`); `CODEFACTORY_FORGE__BASE_URL` is the forge's web address, from
which the REST base URL and the git remote derive unless `api_url` / `git_url` set them apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codefactory.hosts import is_loopback

ForgeType = Literal["local", "github", "gitlab", "azure-devops", "bitbucket"]


class ForgeOAuthSettings(BaseModel):
    """The factory's OAuth application on the forge, through which each person grants it a
    user token (authorization code + PKCE, RFC 6749 and RFC 7636; `/forge/connect`)."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = ""
    """Empty: the OAuth grant is off (only development tokens work)."""
    client_secret_file: Path | None = None
    authorize_url: str = ""
    """Empty: the forge's documented endpoint, derived from `forge.base_url` (GitHub
    `/login/oauth/authorize`, GitLab `/oauth/authorize`, Bitbucket Cloud
    `https://bitbucket.org/site/oauth2/authorize`, Data Center `/rest/oauth2/latest/authorize`).
    Azure DevOps signs in with Microsoft Entra ID: set both URLs to the tenant's v2.0
    endpoints."""
    token_url: str = ""
    scopes: str = ""
    """Empty: the forge's scope for pull requests (GitHub `repo`, GitLab `api`, Bitbucket
    `pullrequest:write`, Azure DevOps `499b84ac-1321-427f-aa17-267ca6975798/.default
    offline_access`)."""

    @field_validator("authorize_url", "token_url")
    @classmethod
    def _https(cls, value: str) -> str:
        return _https_or_loopback(value)


class ForgeSettings(BaseModel):
    """One forge for every repository of this factory (docs/review.md, "Forges")."""

    model_config = ConfigDict(extra="forbid")

    type: ForgeType = "local"
    base_url: str = ""
    """The forge's web address: `https://github.com`, `https://github.example.com` (GitHub
    Enterprise Server), `https://gitlab.example.com`, `https://dev.azure.com/<organisation>`,
    `https://bitbucket.org` or a Bitbucket Data Center address."""
    api_url: str = ""
    """The REST base URL; empty: derived from `base_url` (`https://api.github.com`,
    `<base>/api/v3`, `<base>/api/v4`, `<base>` for Azure DevOps, `https://api.bitbucket.org/2.0`
    or `<base>/rest/api/1.0` for Data Center)."""
    git_url: str = ""
    """The git remote's base; empty: `base_url`. A repository `acme/payments` is pushed to
    `<git_url>/acme/payments.git` (Azure DevOps: `<git_url>/<project>/_git/<repo>`)."""
    bitbucket_flavour: Literal["cloud", "data-center"] = "cloud"
    token_file: Path | None = None
    """The factory's own (app or bot) token: it pushes the branch and sets the commit status,
    never opens the request."""
    user_tokens: dict[str, str] = Field(default_factory=dict)
    """Development mode only: person id → that person's forge token, standing in for the
    OAuth grant (`CODEFACTORY_FORGE__USER_TOKENS`, a JSON object)."""
    user_tokens_dir: Path | None = None
    """Production: the folder of per-person OAuth tokens (`<person>.json`), 0700."""
    base_branch: str = "main"
    """The branch requests target when the repository does not say."""
    ca_file: Path | None = None
    """A private CA bundle for the forge's TLS; empty: the system's."""
    timeout_s: float = Field(default=20.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    """Retries of a request the vendor says is safe to retry (429/5xx with `Retry-After`)."""
    max_retry_wait_s: float = Field(default=30.0, ge=0)
    """A `Retry-After` longer than this is not waited for: the call fails `RateLimited`."""
    oauth: ForgeOAuthSettings = Field(default_factory=ForgeOAuthSettings)
    status_context: str = "codefactory/gate"
    """The name of the commit status / check the gate's verdict is set under."""

    @field_validator("base_url", "api_url", "git_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if value.startswith("file://"):
            return value  # a git remote on this machine (tests, air-gapped mirrors)
        return _https_or_loopback(value)

    @property
    def is_remote(self) -> bool:
        return self.type != "local"


def _https_or_loopback(value: str) -> str:
    """`value` without a trailing slash: https only, or http to a loopback host (a stand-in)."""
    value = value.rstrip("/")
    if not value or value.startswith("https://"):
        return value
    if value.startswith("http://"):
        host = value[len("http://") :].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        if is_loopback(host):
            return value
    raise ValueError(f"{value!r}: a forge is reached over https (http only on loopback)")
