"""Settings of the trigger surface: webhook secrets, repository mapping, limits, schedules.

Secrets come from `triggers.secrets.<source>` (`CODEFACTORY_TRIGGERS__SECRETS__GITHUB=…`) or
from `CODEFACTORY_<SOURCE>_WEBHOOK_SECRET` (`-` written `_`: `CODEFACTORY_AZURE_DEVOPS_…`),
which `config.py` reads with `env_secrets`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from codefactory.domain import ChangeKind
from codefactory.triggers.repositories import check_id, forge_name, ids_by_path, local_id

WEBHOOK_SOURCES = (
    "github",
    "gitlab",
    "azure-devops",
    "bitbucket",
    "jira",
    "servicenow",
    "sentry",
    "datadog",
    "slack",
    "webhook",
)
"""The sources with a `POST /webhooks/<source>` endpoint (`webhook` is the generic HMAC one;
`azure-devops` and `bitbucket` only reconcile the factory's own requests)."""


class RepositoryBinding(BaseModel):
    """Where runs for one remote repository (or project, service, CI) happen."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    """The local git repository the runs change."""
    sponsor: str = ""
    """The accountable human for runs no human asked for (alerts, scans, schedules): a
    person id of the directory (`priya.shah`) holding the `sponsor` role, else such runs are
    refused. Runs a human asked for are sponsored by that human, never by this."""
    id: str = ""
    """The repository's canonical id (`acme/payments`, a forge URL; docs/repositories.md).
    Empty: the key a delivery matched when it is a forge's `owner/name`, else the one id
    the checkout's other bindings give it, else `local:<path>`."""

    @field_validator("id")
    @classmethod
    def _an_id(cls, value: str) -> str:
        return check_id(value) if value else value


class ScheduleSettings(BaseModel):
    """A run started by the clock: a cron expression (UTC) and what to ask for."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    """Kebab-case name; `<name>@<fire time>` is the delivery id, so a time fires once."""
    cron: str
    """Five-field cron expression, evaluated in UTC (`0 6 * * 1`: Mondays 06:00)."""
    repository: str
    """A key of `triggers.repositories`."""
    kind: ChangeKind
    """The kind of change to ask for (a Cedar action)."""
    title: str
    body: str = ""
    labels: list[str] = Field(default_factory=list)

    @field_validator("cron")
    @classmethod
    def _parses(cls, value: str) -> str:
        try:
            CronSim(value, datetime.now(UTC))
        except CronSimError as err:
            raise ValueError(f"not a cron expression: {err}") from err
        return value


class TriggerSettings(BaseModel):
    """Settings of the trigger surface (webhook secrets, repositories, limits, schedules)."""

    model_config = ConfigDict(extra="forbid")

    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    """Webhook secret per source (`github`, `gitlab`, …); a source without one answers 401."""
    repositories: dict[str, RepositoryBinding] = Field(default_factory=dict)
    """Remote name → local repository: `org/repo` (GitHub, GitLab), a Jira project key, a
    Sentry project slug, a Datadog `service`, a ServiceNow configuration item. A key
    `<source>:<name>` takes precedence over `<name>`. Unknown names are refused."""
    max_body_bytes: int = 1_048_576
    """Larger deliveries are answered 413 without being read."""
    replay_window_s: float = 300.0
    """A delivery signed further than this from now (either way) is refused as a replay."""
    trigger_labels: list[str] = Field(default_factory=lambda: ["agent-ok", "codefactory"])
    """Labels that start a run when added to an issue, besides the change-kind labels."""
    command: str = "/factory"
    """Comment prefix that starts a run (`/factory fix`)."""
    ready_statuses: list[str] = Field(default_factory=lambda: ["Ready"])
    """Jira statuses an issue moving into starts a run."""
    schedules: list[ScheduleSettings] = Field(default_factory=list)
    webhook_key: str = Field(default="webhook", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    """The name of the generic webhook's key: policy's `Webhook::"<name>"` principal, which a
    `data.requested_by` person may be sponsored by only where `Action::"act-for"` permits."""
    rejections_per_minute: int = Field(default=60, ge=1)
    """Rejected deliveries (bad or missing signature, stale, oversized, malformed) allowed per
    source and client address in a minute; beyond it the client is answered 429 unread."""
    decide_at_intake: bool = True
    """Whether intake decides a stored delivery (repository, sponsor, policy's first check)
    before answering, so the answer names the run and its state. False: intake only stores
    it (many deliveries per commit) and answers `queued` with no run yet, and the worker
    that claims it decides it: for thousands of deliveries a second (docs/scale-out.md)."""
    rejection_field_chars: int = Field(default=128, ge=16, le=1024)
    """Untrusted text (delivery ids, reasons) in the aggregated `webhook-rejections` audit
    events is cut to this many characters, beside its SHA-256."""

    @field_validator("secrets")
    @classmethod
    def _known_sources(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        unknown = sorted(set(value) - set(WEBHOOK_SOURCES))
        if unknown:
            raise ValueError(f"no webhook source named {', '.join(unknown)}")
        return value

    def secret_for(self, source: str) -> str:
        """The source's secret; "" when none is configured."""
        secret = self.secrets.get(source)
        return secret.get_secret_value() if secret is not None else ""

    def binding_for(self, source: str, remote: str) -> RepositoryBinding | None:
        return self.repositories.get(f"{source}:{remote}") or self.repositories.get(remote)

    def delivery_repository_id(self, source: str, remote: str) -> str | None:
        """The canonical id for a delivery from `source` naming `remote`: the matched
        binding's `id`, else its key when that is a forge's `owner/name`, else the id of its
        checkout (`repository_id`); None when no binding matches."""
        key = f"{source}:{remote}" if f"{source}:{remote}" in self.repositories else remote
        binding = self.repositories.get(key)
        if binding is None:
            return None
        named = forge_name(key, WEBHOOK_SOURCES)
        return binding.id or named or self.repository_id(binding.path)

    def repository_ids(self) -> dict[Path, str]:
        """Each bound checkout (resolved path) → its canonical id (docs/repositories.md)."""
        bindings = [(key, b.path, b.id) for key, b in self.repositories.items()]
        return ids_by_path(bindings, WEBHOOK_SOURCES)

    def repository_id(self, path: Path) -> str:
        """The canonical id of the checkout at `path`: its bindings' id, else `local:<path>`."""
        return self.repository_ids().get(path.expanduser().resolve()) or local_id(path)


def secret_variable(source: str) -> str:
    """The environment variable of `source`'s secret: `CODEFACTORY_<SOURCE>_WEBHOOK_SECRET`,
    upper case, `-` written `_` (`CODEFACTORY_AZURE_DEVOPS_WEBHOOK_SECRET`)."""
    return f"CODEFACTORY_{source.upper().replace('-', '_')}_WEBHOOK_SECRET"


def env_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """Secrets from `CODEFACTORY_<SOURCE>_WEBHOOK_SECRET` variables, by source."""
    found = {source: environ.get(secret_variable(source), "") for source in WEBHOOK_SOURCES}
    return {source: secret for source, secret in found.items() if secret}


def with_env_secrets(data: Any, environ: Mapping[str, str]) -> Any:
    """Settings input with `CODEFACTORY_<SOURCE>_WEBHOOK_SECRET` filling secrets not set
    otherwise (explicit configuration wins)."""
    secrets = env_secrets(environ)
    if not secrets or not isinstance(data, dict):
        return data
    triggers = data.get("triggers")
    if isinstance(triggers, TriggerSettings):
        merged = {**secrets, **{k: v.get_secret_value() for k, v in triggers.secrets.items()}}
        data = {**data, "triggers": triggers.model_copy(update={"secrets": _secret_strs(merged)})}
    elif isinstance(triggers, dict):
        given = triggers.get("secrets")
        merged = {**secrets, **(given if isinstance(given, dict) else {})}
        data = {**data, "triggers": {**triggers, "secrets": merged}}
    elif triggers is None:
        data = {**data, "triggers": {"secrets": secrets}}
    return data


def _secret_strs(values: Mapping[str, str]) -> dict[str, SecretStr]:
    return {key: SecretStr(value) for key, value in values.items()}
