"""The context engine over MCP, as a third-party client sees it: the `mcp` SDK's own client,
over streamable HTTP and TLS, on the model gateway's listener, with a run's credential.

It lists only the tools of the sources policy lets the run's engine read (the shipped
registry clears `agent:pydantic-ai` for public and internal data: Datadog and ServiceNow,
configured as confidential, are not offered), every call is a governed read (masked,
audited with reader `mcp`), another source's data is refused, and a credential that is not
a live run's is refused at the door.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from codefactory.config import Settings
from codefactory.context.runs import RunContext
from codefactory.domain import ChangeKind, Run, RunState
from codefactory.engines.gateway import ModelGateway
from codefactory.engines.session import Budget
from codefactory.factory import Factory, build_factory, model_gateway
from codefactory.sandbox.port import Workspace
from tests.conftest import data_dir_sharing_cache, sample_service
from tests.context_helpers import vendor_settings
from tests.context_standins.vendors import DatadogStandin, SentryStandin, ServiceNowStandin

pytestmark = pytest.mark.usefixtures("bwrap_available")
ENGINE = "agent:pydantic-ai"
SECRETS = ("jane.doe@example.com", "AKIA", "sk_live_", "GB82WEST12345698765432")


def a_run(repository: str, commit: str) -> Run:
    return Run(
        id="r-mcp-1",
        trigger_id="t-1",
        kind=ChangeKind.GENERAL_CHANGE,
        repository=repository,
        sponsor="priya.shah",
        agent_id="agent:codefactory-recipes",
        state=RunState.CONTEXT_READY,
        reason="",
        base_commit=commit,
        head_commit="",
        branch="",
        package_dir="",
        created_at=datetime.now(UTC),
        engine=ENGINE,
    )


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, uv_cache: Path
) -> Iterator[tuple[Factory, ModelGateway, RunContext, str]]:
    root = tmp_path_factory.mktemp("mcp")
    repo = sample_service(root / "sample-service")
    with ExitStack() as stack:
        standins = (SentryStandin(), DatadogStandin(), ServiceNowStandin())
        for standin in standins:
            standin.start()
            stack.callback(standin.stop)
        sentry, datadog, servicenow = standins
        settings = Settings(
            data_dir=data_dir_sharing_cache(root / "data", uv_cache),
            **vendor_settings(
                root / "secrets", sentry=sentry, datadog=datadog, servicenow=servicenow
            ),
        )
        factory = build_factory(settings)
        workspace: Workspace = factory.loop.sandbox.provision(
            repo=repo, commit="HEAD", run_id="r-mcp-1"
        )
        stack.callback(workspace.destroy)
        context_engine = factory.loop.context
        assert context_engine is not None
        run = a_run("local:" + str(repo), workspace.base_commit)
        context = context_engine.open(run, ENGINE, workspace)
        stack.callback(context_engine.close, run.id)
        gateway = model_gateway(settings, factory.store, context_engine.runs)  # type: ignore[attr-defined]
        stack.callback(gateway.stop)
        gateway.start()
        credential = gateway.grant(
            run.id, run.agent_id, run.sponsor, ENGINE, "gpt-4.1-mini", Budget()
        )
        yield factory, gateway, context, credential


def session_of(gateway: ModelGateway, credential: str) -> httpx2.AsyncClient:
    context = ssl.create_default_context(cafile=str(gateway.ca_file))
    return httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {credential}"}, verify=context, timeout=30
    )


def with_client(gateway: ModelGateway, credential: str, work: Any) -> Any:
    async def main() -> Any:
        async with session_of(gateway, credential) as http:
            transport = streamable_http_client(gateway.local_url + "/mcp", http_client=http)
            async with Client(transport) as client:
                return await work(client)

    return anyio.run(main)


def test_a_third_party_client_lists_only_the_sources_policy_allows(
    served: tuple[Factory, ModelGateway, RunContext, str],
) -> None:
    _, gateway, _, credential = served

    async def names(client: Client) -> list[str]:
        return sorted(tool.name for tool in (await client.list_tools()).tools)

    assert with_client(gateway, credential, names) == [
        "repository_fetch",
        "repository_search",
        "sentry_fetch",
        "sentry_search",
    ]  # datadog and servicenow hold confidential data: not for this engine


def test_a_call_is_a_governed_read_masked_and_audited(
    served: tuple[Factory, ModelGateway, RunContext, str],
) -> None:
    factory, gateway, _, credential = served

    async def calls(client: Client) -> list[Any]:
        return [
            await client.call_tool("sentry_fetch", {"ref": "4509012345"}),
            await client.call_tool("datadog_search", {"query": "callback"}),
            await client.call_tool("sentry_fetch", {"ref": "4509099999"}),
            await client.call_tool("repository_fetch", {"ref": "../../etc/passwd"}),
            await client.call_tool("sentry_search", {"query": "jane.doe@example.com"}),
        ]

    sentry, datadog, foreign, escape, _ = with_client(gateway, credential, calls)
    text = sentry.content[0].text
    assert not sentry.is_error and "service/callbacks.py" in text
    assert "<EMAIL_ADDRESS_1>" in text
    assert not any(secret in text for secret in SECRETS)
    # a tool it was not offered is still a governed read: refused, and the refusal audited
    assert datadog.is_error and "refused" in datadog.content[0].text
    assert "cleared for public, internal only" in datadog.content[0].text
    assert foreign.is_error and "out-of-scope" in foreign.content[0].text
    assert escape.is_error and "out-of-scope" in escape.content[0].text
    reads = [e for e in factory.audit.events("r-mcp-1") if e.name.startswith("context-read")]
    mcp_reads = [e.data for e in reads if e.data["reader"] == "mcp"]
    assert [(r["connector"], r["operation"], r.get("error", "")) for r in mcp_reads] == [
        ("sentry", "fetch", ""),
        ("datadog", "search", "refused"),
        ("sentry", "fetch", "out-of-scope"),
        ("repository", "fetch", "out-of-scope"),
        ("sentry", "search", ""),
    ]
    assert mcp_reads[-1]["argument"] == "<EMAIL_ADDRESS_1>"  # the log never holds the value
    first = mcp_reads[0]
    assert first["masked"].get("EMAIL_ADDRESS", 0) >= 1 and first["digest"].startswith("sha256:")
    log = json.dumps([e.data for e in reads])
    assert not any(secret in log for secret in SECRETS)


def test_a_credential_that_is_not_a_live_runs_is_refused(
    served: tuple[Factory, ModelGateway, RunContext, str],
) -> None:
    _, gateway, _, _ = served

    async def answer() -> int:
        async with session_of(gateway, "cfk-not-a-credential") as http:
            response = await http.post(
                gateway.local_url + "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream"},
            )
            return response.status_code

    assert anyio.run(answer) == 401
