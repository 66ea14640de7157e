"""Settings of operating the factory: the metrics endpoint, trace export and the log format."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class _OtelEnvironment(BaseSettings):
    """The OpenTelemetry SDK's own variable (OTel specification, "OTLP Exporter
    Configuration"), read through pydantic-settings as `config.py` reads ours."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    otel_exporter_otlp_endpoint: str = ""


def _standard_otlp_endpoint() -> str:
    return _OtelEnvironment().otel_exporter_otlp_endpoint


class ObservabilitySettings(BaseModel):
    """`/metrics`, OpenTelemetry traces of runs and the log lines of `serve` and `worker`
    (docs/operations.md)."""

    model_config = ConfigDict(extra="forbid")

    metrics_token: SecretStr = SecretStr("")
    """Bearer token a scraper must send to `GET /metrics` (`Authorization: Bearer <token>`);
    empty, `/metrics` answers anyone who reaches the listen address."""
    otlp_endpoint: str = Field(default_factory=_standard_otlp_endpoint)
    """Base URL of an OTLP/HTTP collector (e.g. `http://otel-collector:4318`); spans go to
    `<base>/v1/traces`. Defaults to `OTEL_EXPORTER_OTLP_ENDPOINT`; empty, no trace is
    exported."""
    service_name: str = "codefactory"
    """The `service.name` resource attribute of exported spans."""
    log_format: Literal["json", "text"] = "json"
    """`json`: one JSON object per line with the run id (`run_id`); `text`: one readable line."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """The lowest level written by `serve` and `worker`."""
