"""Issue 13's check, end to end: a ticket whose Jira issue, Sentry event and log lines carry
personal data and secrets is taken by the in-harness agent through the real gateway (replay
upstream), with every context source a local stand-in speaking its vendor's API.

The model traffic the gateway recorded carries none of the personal data or secrets; the
engine still gets the stack trace and the file it names (gathered by the loop, and fetched
again by the agent over MCP); every read is in the audit log; a source above the engine's
class (Datadog, confidential) is refused, not truncated; the package cites what was given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codefactory.config import Settings
from codefactory.domain import RunState
from codefactory.engines.settings import EngineSettings, GatewaySettings
from codefactory.factory import build_factory
from codefactory.runs.report import run_report
from codefactory.runs.tickets import accept_ticket
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service
from tests.context_helpers import vendor_settings
from tests.context_standins.atlassian import TOKEN, USER, AtlassianStandin, serve_atlassian
from tests.context_standins.vendors import DatadogStandin, SentryStandin

pytestmark = pytest.mark.usefixtures("bwrap_available")
REGISTRY = TEMPLATE.parent / "engines" / "registry.toml"
SENTRY_URL = "https://sentry.io/organizations/acme-bank/issues/4509012345/"
PERSONAL_AND_SECRET = (
    "maria.lopez@example.com",  # Jira comment
    "+44 20 7946 0958",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "jane.doe@example.com",  # Sentry event, Datadog log
    "AKIAQZ7XJ4N2R5T6Y3WK",
    "sk_live_51Hf7PqLrT9xYzAbCdEfGhIjKlMnOpQrStUvWx",
    "GB82WEST12345698765432",
    "4111 1111 1111 1111",
    "ops.lead@bank.example",  # the ticket itself
)


def ticket() -> bytes:
    description = (
        "Card payments time out; the callback check fails in production.\n"
        f"Sentry: {SENTRY_URL}\nReported by ops.lead@bank.example."
    )
    return json.dumps(
        {
            "key": "PAY-7",
            "fields": {
                "summary": "Card payments time out after the gateway upgrade",
                "description": description,
                "labels": ["bug"],
            },
        }
    ).encode()


def script(path: Path) -> Path:
    steps: list[dict[str, Any]] = [
        {"tool": {"name": "sentry_fetch", "arguments": {"ref": "4509012345"}}},
        {"tool": {"name": "read_file", "arguments": {"path": "service/callbacks.py"}}},
        {
            "tool": {
                "name": "edit_file",
                "arguments": {
                    "path": "README.md",
                    "old": "# sample-service",
                    "new": "# sample-service\n\nCallbacks: see service/callbacks.py.",
                },
            }
        },
        {"tool": {"name": "finish", "arguments": {"summary": "documented the callback check"}}},
        {"text": "done"},
    ]
    path.write_text(
        json.dumps({"engine": "agent:pydantic-ai", "model": "gpt-4.1-mini", "steps": steps})
    )
    return path


@pytest.fixture
def standins() -> Iterator[tuple[AtlassianStandin, SentryStandin, DatadogStandin]]:
    vendors = (SentryStandin(), DatadogStandin())
    for standin in vendors:
        standin.start()
    try:
        with serve_atlassian() as atlassian:
            yield atlassian, *vendors
    finally:
        for standin in vendors:
            standin.stop()


def test_the_model_never_sees_personal_data_or_secrets_yet_gets_the_stack_and_the_file(
    tmp_path: Path,
    uv_cache: Path,
    standins: tuple[AtlassianStandin, SentryStandin, DatadogStandin],
) -> None:
    atlassian, sentry, datadog = standins
    settings = Settings(
        data_dir=data_dir_sharing_cache(tmp_path / "data", uv_cache),
        gateway=GatewaySettings(upstream=f"replay:{script(tmp_path / 'steps.json')}"),
        engines=EngineSettings(registry=REGISTRY),
        **vendor_settings(
            tmp_path / "secrets",
            sentry=sentry,
            datadog=datadog,
            atlassian=atlassian,
            atlassian_user=USER,
            atlassian_token=TOKEN,
        ),
    )
    factory = build_factory(settings)
    repo = sample_service(tmp_path / "sample-service")
    run = accept_ticket(factory, payload=ticket(), repo=repo, engine="agent:pydantic-ai")
    assert run.state is RunState.IN_REVIEW, run.reason

    traffic = (settings.model_traffic_dir / f"{run.id}.yaml").read_text()
    leaked = [value for value in PERSONAL_AND_SECRET if value in traffic]
    assert leaked == []
    assert "<EMAIL_ADDRESS_" in traffic  # masked, consistently named, still there to reason
    assert "UnicodeError" in traffic and "to_ascii" in traffic  # the stack trace
    assert "ALLOWED_CALLBACK_HOSTS" in traffic  # the file the stack trace names, gathered

    reads = [e for e in factory.audit.events(run.id) if e.name.startswith("context-read")]
    done = {(e.data["connector"], e.data["reader"]) for e in reads if e.name == "context-read"}
    assert {("jira", "loop"), ("sentry", "loop"), ("repository", "loop")} <= done
    assert ("confluence", "loop") in done  # the runbook page the Jira issue links
    assert ("sentry", "mcp") in done  # the agent's own call, through the same wrappers
    refused = {
        (e.data["connector"], e.data["error"]) for e in reads if e.name == "context-read-failed"
    }
    assert ("datadog", "refused") in refused  # confidential: above the engine's class
    assert ("confluence", "out-of-scope") in refused  # the SECRET space's page
    audit_text = json.dumps([e.data for e in reads])
    assert [value for value in PERSONAL_AND_SECRET if value in audit_text] == []

    report = run_report(factory.store, run.id)
    assert report is not None and "jira:PAY-7" in report["context"]["items"]
    assert any(read["reader"] == "mcp" for read in report["context"]["reads"])

    summary = (Path(factory.store.require_run(run.id).package_dir) / "summary.md").read_text()
    assert "`jira:PAY-7`" in summary and "`sentry:4509012345`" in summary
    assert "`repository:service/callbacks.py`" in summary
