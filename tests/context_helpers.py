"""Settings that point a factory's context engine at the local vendor stand-ins
(`tests/context_standins/`), with credential files written outside the data folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codefactory.context.settings import (
    ContextSettings,
    DatadogSettings,
    SentrySettings,
    ServiceSettings,
    SourceSettings,
)
from tests.context_standins.vendors import (
    DATADOG_API_KEY,
    DATADOG_APPLICATION_KEY,
    SENTRY_TOKEN,
    SERVICENOW_PASSWORD,
    SERVICENOW_USER,
)


def secret_file(folder: Path, name: str, value: str) -> Path:
    """`folder/name` holding `value`, mode 0600."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def vendor_settings(
    secrets: Path,
    *,
    sentry: Any = None,
    datadog: Any = None,
    servicenow: Any = None,
    atlassian: Any = None,
    atlassian_user: str = "",
    atlassian_token: str = "",
) -> dict[str, Any]:
    """`Settings` fields (`context`, `sentry`, `datadog`, `servicenow`, `jira`,
    `confluence`) for the stand-ins given; the others stay off."""
    fields: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    if sentry is not None:
        fields["sentry"] = SentrySettings(
            base_url=sentry.base_url,
            organization="acme-bank",
            token_file=secret_file(secrets, "sentry-token", SENTRY_TOKEN),
        )
        sources["sentry"] = SourceSettings(scope=["payments-api"], data_class="internal")
    if datadog is not None:
        fields["datadog"] = DatadogSettings(
            base_url=datadog.base_url,
            token_file=secret_file(secrets, "dd-api-key", DATADOG_API_KEY),
            application_key_file=secret_file(secrets, "dd-app-key", DATADOG_APPLICATION_KEY),
        )
        sources["datadog"] = SourceSettings(scope=["payments"], data_class="confidential")
    if servicenow is not None:
        fields["servicenow"] = ServiceSettings(
            base_url=servicenow.base_url,
            user=SERVICENOW_USER,
            token_file=secret_file(secrets, "servicenow-password", SERVICENOW_PASSWORD),
        )
        sources["servicenow"] = SourceSettings(scope=["incident"], data_class="confidential")
    if atlassian is not None:
        token = secret_file(secrets, "atlassian-token", atlassian_token)
        for name in ("jira", "confluence"):
            fields[name] = ServiceSettings(
                base_url=atlassian.base_url, user=atlassian_user, token_file=token
            )
        sources["jira"] = SourceSettings(scope=["PAY"], data_class="internal")
        sources["confluence"] = SourceSettings(scope=["ENG"], data_class="internal")
    fields["context"] = ContextSettings(**sources)
    return fields
