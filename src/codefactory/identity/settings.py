"""Settings of identity & delegation and the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from codefactory.hosts import is_loopback

# What the default policy's routine changes may touch; any other kind gets the repository.
DEFAULT_SCOPE_PATHS = {
    "bump_dependency": [
        "requirements*.txt",
        "**/requirements*.txt",
        "pyproject.toml",
        "**/pyproject.toml",
        "uv.lock",
        "poetry.lock",
    ],
    "fix_lint": ["*.py", "**/*.py", "*.pyi", "**/*.pyi"],
}


class Pkcs11Settings(BaseModel):
    """Where the factory's keys live when `identity.signer = "pkcs11"`: a PKCS#11 token."""

    model_config = ConfigDict(extra="forbid")

    library: Path = Path("/usr/lib/softhsm/libsofthsm2.so")
    """The PKCS#11 module (`.so`) of the HSM; SoftHSM2's for tests."""
    token_label: str = "codefactory"
    """The label of the token holding the keys."""
    pin: SecretStr | None = None
    """The user PIN (never logged); or `pin_file`."""
    pin_file: Path | None = None
    """A file holding the user PIN (one line), readable by the factory only."""
    issuer_label: str = "codefactory-issuer"
    """Label of the issuer's current key in the token (retired keys get `<label>.retired.<kid>`)."""
    agent_label_prefix: str = "codefactory-agent-"
    """Labels of agents' keys: this prefix and the agent id."""


class IdentitySettings(BaseModel):
    """Settings of identity & delegation and the audit log."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = "codefactory:local"
    """The factory's name as an issuer: `iss` of every delegation token, issuer of agents."""
    directory_file: Path | None = None
    """The directory of people (TOML; `identity.directory.FileDirectory`): their sender
    identities, roles and SSH keys. Kept outside the data folder; unset, nobody is known."""
    directory_scim_url: str | None = None
    """The bank identity store's SCIM 2.0 base URL (`https://idm.bank.example/scim/v2`;
    `identity.directory_scim.ScimDirectory` lists `{base}/Users`): https, or http only on a
    loopback address. Set, it replaces `directory_file` (setting both is refused)."""
    directory_scim_token_file: Path | None = None
    """A file holding the SCIM bearer token (one line; never logged), outside the data folder;
    read again at every refresh, so it can rotate. Required with `directory_scim_url`."""
    directory_ttl_s: float = Field(default=60.0, gt=0)
    """How long (seconds) a set of people fetched over SCIM answers before it is fetched
    again; a failed refetch is an error, never the older set."""
    statement_max_age_s: int = Field(default=600, gt=0)
    """How old a signed statement (a verdict, a governance act) may be when submitted; one
    older, or more than a minute in the future, is refused: sign afresh."""
    keys_dir: Path | None = None
    """Folder of the issuer's and the agents' key files; defaults to `<data_dir>/keys`
    (development mode only)."""
    signer: Literal["development-key-files", "pkcs11"] = "development-key-files"
    """Where private keys live: `pkcs11` (an HSM token; keys made non-extractable there) or
    `development-key-files` (files in the data folder: whoever can write it can forge)."""
    pkcs11: Pkcs11Settings = Field(default_factory=Pkcs11Settings)
    """The PKCS#11 token, when `signer = "pkcs11"`."""
    trust_file: Path | None = None
    """Pinned trust roots (TOML, `codefactory identity trust-export`): the issuer's, the
    checkpoints' and the agents' public keys. Kept outside the data folder; when set, every
    verifier uses only these keys. Required with `signer = "pkcs11"`."""
    audience: str = "codefactory:run"
    """`aud` of delegation tokens: the components that act for a run check it."""
    token_ttl_s: int = Field(default=3600, gt=0)
    """Lifetime of a run's delegation token: the run's budget from authorization to review."""
    default_agent_engines: list[str] = Field(default_factory=lambda: ["*"])
    """Engines (fnmatch patterns) the default agent may run: those the factory wires; register
    agents with narrower lists for other work (`codefactory agents create --engine`)."""
    scope_paths: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_SCOPE_PATHS))
    """Path globs a delegation grants per change kind; kinds not listed get `**`."""

    @field_validator("directory_scim_url")
    @classmethod
    def _scim_url(cls, value: str | None) -> str | None:
        """https, or http only to a loopback host (a test or a local sidecar)."""
        if value is None:
            return None
        parts = urlsplit(value)
        if not parts.hostname or parts.query or parts.fragment or parts.username:
            raise ValueError("directory_scim_url must be a base URL: scheme, host and path only")
        if parts.scheme == "https":
            return value
        if parts.scheme == "http" and is_loopback(parts.hostname):
            return value
        raise ValueError("directory_scim_url must be https (http only on a loopback address)")
