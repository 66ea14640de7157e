"""Trigger settings: the documented environment names, and docs that name every source and
setting (as Datasette's test_docs does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.triggers.settings import (
    WEBHOOK_SOURCES,
    TriggerSettings,
    env_secrets,
    secret_variable,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_secrets_come_from_the_documented_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CODEFACTORY_GITHUB_WEBHOOK_SECRET", "from-env")
    monkeypatch.setenv("CODEFACTORY_WEBHOOK_WEBHOOK_SECRET", "generic")
    monkeypatch.setenv("CODEFACTORY_TRIGGERS__SECRETS__SLACK", "nested")
    settings = Settings()
    assert settings.triggers.secret_for("github") == "from-env"
    assert settings.triggers.secret_for("webhook") == "generic"
    assert settings.triggers.secret_for("slack") == "nested"
    assert settings.triggers.secret_for("jira") == ""
    explicit = Settings(triggers=TriggerSettings.model_validate({"secrets": {"github": "file"}}))
    assert explicit.triggers.secret_for("github") == "file"
    assert explicit.triggers.secret_for("webhook") == "generic"
    assert "from-env" not in repr(settings)


def test_env_secrets_reads_only_its_own_names() -> None:
    environ = {"CODEFACTORY_JIRA_WEBHOOK_SECRET": "j", "JIRA_WEBHOOK_SECRET": "x"}
    assert env_secrets(environ) == {"jira": "j"}
    hyphenated = {"CODEFACTORY_AZURE_DEVOPS_WEBHOOK_SECRET": "a"}
    assert env_secrets(hyphenated) == {"azure-devops": "a"}


def test_the_docs_name_every_source_setting_and_variable() -> None:
    triggers = (DOCS / "triggers.md").read_text()
    for source in WEBHOOK_SOURCES:
        assert f"/webhooks/{source}`" in triggers
        assert secret_variable(source) in triggers
    for field in TriggerSettings.model_fields:
        assert field in triggers, field
    policy = (DOCS / "policy.md").read_text()
    for example in (Path(__file__).resolve().parents[2] / "src/codefactory/policy/examples").glob(
        "*.cedar"
    ):
        assert example.name in policy
