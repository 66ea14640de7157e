"""One settings object, read from the environment (prefix `CODEFACTORY_`) and CLI flags.

This is the only module that reads the process environment.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from codefactory.advisories.settings import AdvisorySettings
from codefactory.audit.settings import AuditSettings
from codefactory.context.settings import (
    ContextSettings,
    DatadogSettings,
    SentrySettings,
    ServiceSettings,
)
from codefactory.dispatch.settings import DispatchSettings
from codefactory.engines.settings import EngineSettings, GatewaySettings
from codefactory.identity.settings import IdentitySettings
from codefactory.observability.settings import ObservabilitySettings
from codefactory.review.forges.settings import ForgeSettings
from codefactory.review.settings import ChangeSettings, NotifySettings, ReviewTrackSettings
from codefactory.sandbox.settings import SandboxSettings
from codefactory.triggers.settings import TriggerSettings, with_env_secrets
from codefactory.verify.settings import VerifySettings
from codefactory.web.settings import WebSettings


class RunSettings(BaseModel):
    """Budgets of a run."""

    model_config = ConfigDict(extra="forbid")

    max_rounds: int = 2
    """Verify rounds after which a still-failing change ends the run `failed`."""
    test_timeout_s: float = 300.0
    """Wall-clock limit for the repository's test suite."""


class Settings(BaseSettings):
    """Everything configurable about one factory."""

    model_config = SettingsConfigDict(
        env_prefix="CODEFACTORY_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,  # `store_url` by its name too (model_dump round trips)
    )

    data_dir: Path = Path(".codefactory")
    """Folder holding the database, packages, forge, keys and workspaces."""
    store_url: str = Field(default="", validation_alias="CODEFACTORY_DATABASE_URL", repr=False)
    """The store's database, an SQLAlchemy URL (`CODEFACTORY_DATABASE_URL`), e.g.
    `postgresql+psycopg://codefactory@db.internal:5432/codefactory` (docs/postgresql.md);
    empty: the SQLite file `factory.db` in the data folder. Read it as `database_url`. Never
    in `repr`: it may hold a password (show it with `store.urls.shown`)."""
    advisories_dir: Path | None = None
    """OSV advisory folder or index; defaults to the index `advisories sync`/`import` wrote
    under the data folder, else the advisories shipped with the package."""
    policy_file: Path | None = None
    """Cedar policy file; defaults to the policy shipped with the package."""
    agent_id: str = "agent:codefactory-recipes"
    """The non-human identity runs are attributed to."""
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    runs: RunSettings = Field(default_factory=RunSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    """Where runs execute (`CODEFACTORY_DISPATCH__EXECUTOR`: `threads` or `celery`)."""
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    triggers: TriggerSettings = Field(default_factory=TriggerSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    engines: EngineSettings = Field(default_factory=EngineSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    advisories: AdvisorySettings = Field(default_factory=AdvisorySettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    jira: ServiceSettings = Field(default_factory=ServiceSettings)
    confluence: ServiceSettings = Field(default_factory=ServiceSettings)
    servicenow: ServiceSettings = Field(default_factory=ServiceSettings)
    """The ServiceNow instance (`CODEFACTORY_SERVICENOW__BASE_URL`): incidents and knowledge
    for context, change requests for review."""
    sentry: SentrySettings = Field(default_factory=SentrySettings)
    datadog: DatadogSettings = Field(default_factory=DatadogSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    changes: ChangeSettings = Field(default_factory=ChangeSettings)
    review: ReviewTrackSettings = Field(default_factory=ReviewTrackSettings)
    """QA and UAT sign-offs after approval (`CODEFACTORY_REVIEW__SIGN_OFFS`)."""
    forge: ForgeSettings = Field(default_factory=ForgeSettings)
    """Where review requests open (`CODEFACTORY_FORGE__TYPE`, `CODEFACTORY_FORGE__BASE_URL`)."""
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    """`/metrics` token, trace export, log format (`CODEFACTORY_OBSERVABILITY__*`)."""

    @model_validator(mode="before")
    @classmethod
    def _webhook_secrets(cls, data: Any) -> Any:
        """`CODEFACTORY_<SOURCE>_WEBHOOK_SECRET` fill `triggers.secrets` (issue 5's names)."""
        return with_env_secrets(data, os.environ)

    @model_validator(mode="after")
    def _development_tokens(self) -> Settings:
        """`forge.user_tokens` stands in for each sponsor's OAuth grant in the development
        mode only: a factory whose keys are in an HSM (`identity.signer = "pkcs11"`) takes
        tokens only from the grants people give at `/forge/connect`."""
        if self.forge.user_tokens and self.identity.signer != "development-key-files":
            raise ValueError(
                "forge.user_tokens (CODEFACTORY_FORGE__USER_TOKENS) is for the development mode "
                "only; with identity.signer = pkcs11 each sponsor grants a token at "
                "/forge/connect (docs/forges.md)"
            )
        return self

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Stored paths (packages, forge) must not depend on the caller's working directory."""
        return value.expanduser().resolve()

    @property
    def database_url(self) -> str:
        """The store's SQLAlchemy URL: `store_url`, else the SQLite file in the data folder
        (derived on each read, so a copy with another `data_dir` gets its own file)."""
        return self.store_url or f"sqlite:///{(self.data_dir / 'factory.db').resolve()}"

    @property
    def packages_dir(self) -> Path:
        return self.data_dir / "packages"

    @property
    def forge_dir(self) -> Path:
        return self.data_dir / "forge"

    @property
    def workspaces_dir(self) -> Path:
        return self.data_dir / "workspaces"

    @property
    def model_traffic_dir(self) -> Path:
        """The gateway's per-run cassettes (vcrpy YAML): what `runs replay` replays."""
        return self.data_dir / "model-traffic"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"


def load_settings(data_dir: Path | None = None) -> Settings:
    """Settings from the environment, with the CLI's `--data-dir` taking precedence."""
    settings = Settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir.expanduser().resolve()})
    return settings


def user_config_dir() -> Path:
    """The user's Code Factory folder: `$XDG_CONFIG_HOME/codefactory`, else
    `~/.config/codefactory` (XDG Base Directory); `codefactory login` keeps tokens there."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "codefactory"


DATA_DIR_MODE = 0o700
"""The data folder is its owner's alone: no other account can reach the database, packages,
forge or key files inside it, whatever their own modes (secrets are 0600 as well)."""


def prepare_data_dir(data_dir: Path) -> None:
    """Create `data_dir` 0700, and tighten an existing folder that others may read or enter
    (one warning line on stderr).

    The process umask is left alone: the sandbox's unprivileged user (uid 65534) must read
    the workspaces and layers the factory prepares for it through bind mounts; the 0700
    folder is the boundary for every other account."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=DATA_DIR_MODE)
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & 0o077:
        data_dir.chmod(DATA_DIR_MODE)
        logging.getLogger("codefactory").warning(
            "data folder %s was mode %04o; set to 0700 (others must not read or write it)",
            data_dir,
            mode,
        )


def is_terminal_attached() -> bool:
    """Whether progress bars make sense (CI has no terminal); honours `CI=true`."""
    return os.environ.get("CI", "").lower() not in ("1", "true") and os.isatty(1)
