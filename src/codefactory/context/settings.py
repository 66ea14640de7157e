"""Settings of the context engine (`context.*`) and of the vendor services it reads
(`jira.*`, `confluence.*`, `servicenow.*`, `sentry.*`, `datadog.*`: one instance and one
credential each, shared with the other primitives that talk to the same service).

A connector is on when its service has a `base_url` and its `context.<source>.scope` names
at least one unit (a project, space, table, index). Credentials are files read on the host
when a request is made; none of them ever enters a sandbox. This module imports nothing
heavy: the CLI reads it at every start.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from codefactory.hosts import is_loopback

DEFAULT_DATA_CLASSES = ("public", "internal", "confidential", "restricted")


class ServiceSettings(BaseModel):
    """One vendor instance: where it is and how the factory authenticates."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = ""
    """`https://bank.atlassian.net`, `https://bank.service-now.com`, ...; empty: not used."""
    token_file: Path | None = None
    """A file holding the API token (sent as the vendor documents: Bearer, or Basic with
    `user`); read at each request so a rotated token needs no restart."""
    user: str = ""
    """With `token_file`: HTTP Basic as `user:token` (Atlassian Cloud e-mail and API token,
    ServiceNow user and password)."""
    ca_file: Path | None = None
    """A CA bundle for an instance behind the bank's own CA."""
    timeout_s: float = Field(default=15.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        """An https URL; plain http only to this host (a local stand-in or a sidecar):
        the credential must not cross a network unencrypted."""
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an https URL, got {value!r}")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError(f"{value!r} is plain http to another host: use https")
        return value.rstrip("/")

    @property
    def configured(self) -> bool:
        return bool(self.base_url)


class SentrySettings(ServiceSettings):
    """Sentry (sentry.io or self-hosted): the organisation slug its API paths carry."""

    organization: str = ""


class DatadogSettings(ServiceSettings):
    """Datadog: `base_url` is the site's API host (`https://api.datadoghq.eu`); the API key
    and the application key are two files (`DD-API-KEY`, `DD-APPLICATION-KEY`)."""

    application_key_file: Path | None = None


class SourceSettings(BaseModel):
    """What the factory may read from one source, and how sensitive it is."""

    model_config = ConfigDict(extra="forbid")

    scope: list[str] = Field(default_factory=list)
    """The units the connector may reach (Jira project keys, Confluence space keys,
    ServiceNow tables, Sentry project slugs, Datadog log indexes); empty: connector off."""
    data_class: str = "internal"


class MaskingSettings(BaseModel):
    """What is masked before an engine sees a context item."""

    model_config = ConfigDict(extra="forbid")

    patterns: dict[str, str] = Field(default_factory=dict)
    """The bank's own identifiers: entity name → regular expression
    (`{"ACCOUNT_NUMBER": "\\\\b\\\\d{8}\\\\b", "CUSTOMER_ID": "\\\\bCUST-\\\\d{6}\\\\b"}`)."""
    score_threshold: float = Field(default=0.5, ge=0, le=1)
    """Presidio's confidence below which a pattern match is not masked."""

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
                raise ValueError(f"entity name {name!r} must be UPPER_SNAKE_CASE")
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"pattern for {name} does not compile: {err}") from None
        return value


class ContextSettings(BaseModel):
    """The context engine: classes, budgets, masking and what each source may read."""

    model_config = ConfigDict(extra="forbid")

    data_classes: list[str] = Field(default_factory=lambda: list(DEFAULT_DATA_CLASSES))
    """The bank's data classes, least to most sensitive (renaming them is allowed; the
    engine registry's `data_classes` use the same names)."""
    repository_data_class: str = "internal"
    repository_index: bool = True
    """Keep an incremental full-text index (SQLite FTS5) of each repository under
    `<data_dir>/context-index/`, brought to each run's base commit; multi-word searches
    use it beside ripgrep."""
    token_budget: int = Field(default=6000, gt=0)
    """How many tokens (about 4 characters each) of gathered context the task may carry."""
    max_item_chars: int = Field(default=20_000, gt=0)
    """The longest text one item keeps; longer text is cut and marked."""
    max_response_bytes: int = Field(default=5_000_000, gt=0)
    """The largest answer read from a vendor API; larger is refused, not parsed."""
    docs_folders: list[Path] = Field(default_factory=list)
    """Markdown folders on the host served as the `docs` source."""
    docs: SourceSettings = Field(default_factory=SourceSettings)
    jira: SourceSettings = Field(default_factory=SourceSettings)
    confluence: SourceSettings = Field(default_factory=SourceSettings)
    servicenow: SourceSettings = Field(
        default_factory=lambda: SourceSettings(data_class="confidential")
    )
    sentry: SourceSettings = Field(default_factory=SourceSettings)
    datadog: SourceSettings = Field(
        default_factory=lambda: SourceSettings(data_class="confidential")
    )
    masking: MaskingSettings = Field(default_factory=MaskingSettings)

    @model_validator(mode="after")
    def _known_classes(self) -> ContextSettings:
        if len(set(self.data_classes)) != len(self.data_classes) or not self.data_classes:
            raise ValueError("context.data_classes must be distinct names, least sensitive first")
        sources = {
            "repository_data_class": self.repository_data_class,
            **{
                f"{name}.data_class": getattr(self, name).data_class
                for name in ("docs", "jira", "confluence", "servicenow", "sentry", "datadog")
            },
        }
        for where, name in sources.items():
            if name not in self.data_classes:
                raise ValueError(
                    f"context.{where} is {name!r}, not one of {', '.join(self.data_classes)}"
                )
        return self
