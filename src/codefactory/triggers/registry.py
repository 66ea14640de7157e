"""Which adapter reads which `POST /webhooks/<source>`: a short name → dotted path registry."""

from __future__ import annotations

import importlib

from codefactory.triggers.port import WebhookSource
from codefactory.triggers.settings import WEBHOOK_SOURCES, TriggerSettings

WEBHOOK_ADAPTERS: dict[str, str] = {
    "github": "codefactory.triggers.github.GitHubWebhooks",
    "gitlab": "codefactory.triggers.gitlab.GitLabWebhooks",
    "azure-devops": "codefactory.triggers.azure_devops.AzureDevOpsServiceHooks",
    "bitbucket": "codefactory.triggers.bitbucket.BitbucketWebhooks",
    "jira": "codefactory.triggers.jira.JiraWebhooks",
    "servicenow": "codefactory.triggers.servicenow.ServiceNowIncidents",
    "sentry": "codefactory.triggers.sentry.SentryWebhooks",
    "datadog": "codefactory.triggers.datadog.DatadogWebhooks",
    "slack": "codefactory.triggers.slack.SlackCommands",
    "webhook": "codefactory.triggers.standard_webhooks.StandardWebhooks",
}
assert tuple(WEBHOOK_ADAPTERS) == WEBHOOK_SOURCES


def webhook_source(name: str, settings: TriggerSettings) -> WebhookSource:
    """The adapter for `name`, built for `settings`; KeyError for an unknown source."""
    module, _, cls = WEBHOOK_ADAPTERS[name].rpartition(".")
    adapter: WebhookSource = getattr(importlib.import_module(module), cls)(settings)
    return adapter


def webhook_sources(settings: TriggerSettings) -> dict[str, WebhookSource]:
    """Every webhook adapter, by source name."""
    return {name: webhook_source(name, settings) for name in WEBHOOK_ADAPTERS}
