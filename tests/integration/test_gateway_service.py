"""The gateway as a service: TLS with the factory CA (Python and Node clients), its
addresses, no upstream, an unreachable or slow upstream, Azure paths both ways, the replay
upstream in-process, and failing closed when a record cannot be written."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from codefactory.engines.gateway import (
    GatewayConfigError,
    GatewayNotStarted,
    ModelCall,
    ModelGateway,
    Outcome,
    ssl_context_from,
)
from codefactory.engines.session import Budget
from codefactory.engines.settings import GatewaySettings
from tests.integration.test_gateway_standin import (
    UPSTREAM_KEY,
    Fault,
    Records,
    make_gateway,
    standin_fixture,  # noqa: F401 - the `standin` fixture
)

HELLO = [{"role": "user", "content": "say hello"}]
READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModelGateway, Records]]:
    """A gateway with no upstream configured."""
    records = Records()
    gateway = make_gateway(tmp_path_factory.mktemp("gw-idle"), "", None, records)
    yield gateway, records
    gateway.stop()


def sdk(gateway: ModelGateway, credential: str, **options: object) -> openai.OpenAI:
    http = httpx.Client(verify=ssl_context_from(gateway.ca_file))
    return openai.OpenAI(
        base_url=gateway.local_url + "/v1",
        api_key=credential,
        http_client=http,
        max_retries=0,
        **options,
    )  # type: ignore[arg-type]


def test_addresses_and_access(idle) -> None:
    gateway, _ = idle
    port = gateway.port
    assert gateway.url == f"https://gateway.codefactory.internal:{port}"
    assert gateway.egress_host == f"gateway.codefactory.internal:{port}"
    assert gateway.resolve_entry == ("gateway.codefactory.internal", f"127.0.0.1:{port}")
    gateway.start()  # idempotent: same listener
    assert gateway.port == port
    access = gateway.access("cfk-x", "gpt-test", "openai-responses")
    assert (access.base_url, access.credential, access.protocol) == (
        gateway.url,
        "cfk-x",
        "openai-responses",
    )
    assert access.ca_file == gateway.ca_file and access.ca_file.read_text().startswith(
        "-----BEGIN CERTIFICATE-----"
    )
    assert gateway.access("k", "m", "anthropic-messages", local=True).base_url == gateway.local_url
    with pytest.raises(ValueError, match="protocol 'grpc' is not one of"):
        gateway.access("k", "m", "grpc")


def test_not_started_gateway_has_no_address(tmp_path: Path) -> None:
    gateway = ModelGateway(
        GatewaySettings(), state_dir=tmp_path / "s", traffic_dir=tmp_path / "t", on_call=Records()
    )
    with pytest.raises(GatewayNotStarted):
        _ = gateway.url


def test_tls_is_verified_against_the_factory_ca_only(idle) -> None:
    gateway, _ = idle
    with httpx.Client() as plain, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
        plain.get(gateway.local_url + "/v1/models")
    context = ssl_context_from(gateway.ca_file)
    for name in ("gateway.codefactory.internal", "localhost"):
        with (
            socket.create_connection(("127.0.0.1", gateway.port)) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with (
        socket.create_connection(("127.0.0.1", gateway.port)) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="api.openai.com")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_trusts_the_factory_ca_through_node_extra_ca_certs(idle) -> None:
    gateway, _ = idle
    script = (
        "require('https').get({host: '127.0.0.1', port: PORT, path: '/v1/models',"
        " servername: 'gateway.codefactory.internal'},"
        " r => { console.log(r.statusCode); r.resume(); })"
        ".on('error', e => { console.log('error ' + e.code); });"
    ).replace("PORT", str(gateway.port))
    trusted = subprocess.run(
        ["node", "-e", script],
        capture_output=True,
        text=True,
        timeout=30,
        env={"NODE_EXTRA_CA_CERTS": str(gateway.ca_file), "PATH": "/usr/bin"},
    )
    untrusted = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin"}
    )
    assert trusted.stdout.strip() == "401", trusted.stderr
    assert untrusted.stdout.strip() == "error UNABLE_TO_VERIFY_LEAF_SIGNATURE"


def test_no_upstream_answers_503_and_records_it(idle) -> None:
    gateway, records = idle
    records.clear()
    credential = gateway.grant("run-idle", "a", "s", "cli:codex", "gpt-test", Budget())
    with sdk(gateway, credential) as client, pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-test", messages=HELLO)
    assert raised.value.status_code == 503
    assert raised.value.response.json()["error"]["message"] == (
        "no model upstream is configured: set CODEFACTORY_GATEWAY__UPSTREAM"
    )
    [call] = records.wait(1)
    assert (call.outcome, call.run_id) == (Outcome.NO_UPSTREAM, "run-idle")


def test_expired_credential_is_refused(idle) -> None:
    gateway, records = idle
    records.clear()
    credential = gateway.grant("run-old", "a", "s", "cli:codex", "m", Budget(wall_s=0))
    with sdk(gateway, credential) as client, pytest.raises(openai.AuthenticationError):
        client.models.list()
    assert records.wait(1)[0].error == "credential expired: run wall time 0s spent"


def test_unreachable_upstream_is_502(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    records = Records()
    gateway = make_gateway(tmp_path, f"openai:http://127.0.0.1:{port}/v1", None, records)
    try:
        credential = gateway.grant("run-down", "a", "s", "cli:codex", "gpt-test", Budget())
        with sdk(gateway, credential) as client, pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model="gpt-test", messages=HELLO)
    finally:
        gateway.stop()
    assert raised.value.status_code == 502
    assert raised.value.response.json()["error"]["code"] == "upstream_unreachable"
    [call] = records.wait(1)
    assert (call.outcome, call.attempt) == (Outcome.UNREACHABLE, 1)


def test_slow_upstream_is_504_and_azure_upstream_gets_its_paths(standin, tmp_path: Path) -> None:
    stand_in, serving = standin
    stand_in.reset()
    records = Records()
    upstream = f"azure:{serving.base}/openai/deployments/dep-1?api-version=2025-01-01"
    gateway = make_gateway(tmp_path, upstream, serving.ca_file, records, timeout_s=0.5)
    try:
        credential = gateway.grant("run-az", "a", "s", "cli:codex", "gpt-test", Budget())
        with sdk(gateway, credential) as client:
            client.chat.completions.create(model="gpt-test", messages=HELLO)
            client.responses.create(model="gpt-test", input="hi")
            stand_in.faults.append(Fault(delay_s=2))
            with pytest.raises(openai.APIStatusError) as raised:
                client.chat.completions.create(model="gpt-test", messages=HELLO)
            with pytest.raises(openai.NotFoundError):
                client.post("/messages", cast_to=object, body={"model": "gpt-test"})
    finally:
        gateway.stop()
    assert raised.value.status_code == 504
    chat, responses = stand_in.seen[:2]
    assert (chat.path, chat.query) == (
        "/openai/deployments/dep-1/chat/completions",
        "api-version=2025-01-01",
    )
    assert (responses.path, responses.query) == ("/openai/responses", "api-version=2025-01-01")
    assert chat.headers["api-key"] == UPSTREAM_KEY and "authorization" not in chat.headers
    outcomes = [c.outcome for c in records.wait(4)]
    assert outcomes == [Outcome.OK, Outcome.OK, Outcome.TIMEOUT, Outcome.UNKNOWN_ENDPOINT]


def test_azure_style_callers_reach_an_openai_upstream(standin, tmp_path: Path) -> None:
    stand_in, serving = standin
    stand_in.reset()
    records = Records()
    gateway = make_gateway(tmp_path, f"openai:{serving.base}/v1", serving.ca_file, records)
    try:
        credential = gateway.grant("run-azc", "a", "s", "cli:aider", "gpt-test", Budget())
        http = httpx.Client(verify=ssl_context_from(gateway.ca_file))
        with openai.AzureOpenAI(
            azure_endpoint=gateway.local_url,
            api_key=credential,
            api_version="2024-10-21",
            http_client=http,
            max_retries=0,
        ) as client:
            answer = client.chat.completions.create(model="gpt-test", messages=HELLO)
    finally:
        gateway.stop()
    assert answer.choices[0].message.content == "hello"
    [seen] = stand_in.seen
    assert (seen.path, seen.query) == ("/v1/chat/completions", "")
    [call] = records.wait(1)
    assert (call.path, call.protocol, call.model) == (
        "/openai/deployments/gpt-test/chat/completions",
        "openai-chat",
        "gpt-test",
    )


def test_replay_upstream_serves_in_process(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "engine": "agent:pydantic-ai",
                "model": "gpt-test",
                "steps": [
                    {"text": "replayed answer", "usage": {"input_tokens": 5, "output_tokens": 3}}
                ],
            }
        )
    )
    records = Records()
    gateway = make_gateway(tmp_path, f"replay:{script}", None, records)
    try:
        credential = gateway.grant("run-rp", "a", "s", "agent:pydantic-ai", "gpt-test", Budget())
        with sdk(gateway, credential) as client:
            # A request without tools is a side request the replay answers neutrally.
            answer = client.chat.completions.create(
                model="gpt-test", messages=HELLO, tools=[READ_FILE]
            )
    finally:
        gateway.stop()
    assert answer.choices[0].message.content == "replayed answer"
    [call] = records.wait(1)
    assert (call.outcome, call.input_tokens, call.output_tokens) == (Outcome.OK, 5, 3)
    assert call.upstream == f"replay:{script}"
    assert (
        "uri: http://replay.invalid/v1/chat/completions" in gateway.cassette("run-rp").read_text()
    )


def test_bad_transcript_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"steps": 3}')
    with pytest.raises(GatewayConfigError, match="upstream replay:"):
        ModelGateway(
            GatewaySettings(upstream=f"replay:{broken}"),
            state_dir=tmp_path / "s",
            traffic_dir=tmp_path / "t",
            on_call=Records(),
        )
    with pytest.raises(GatewayConfigError, match="upstream_ca: no CA file"):
        ModelGateway(
            GatewaySettings(upstream_ca=tmp_path / "none.pem"),
            state_dir=tmp_path,
            traffic_dir=tmp_path,
            on_call=Records(),
        )


def test_a_call_that_cannot_be_recorded_fails_closed(tmp_path: Path) -> None:
    def broken(call: ModelCall) -> None:
        raise OSError("audit store unavailable")

    gateway = ModelGateway(
        GatewaySettings(), state_dir=tmp_path / "s", traffic_dir=tmp_path / "t", on_call=broken
    )
    gateway.start()
    try:
        credential = gateway.grant("run-x", "a", "s", "cli:codex", "m", Budget())
        with (
            sdk(gateway, credential) as client,
            pytest.raises(openai.InternalServerError) as raised,
        ):
            client.models.list()
    finally:
        gateway.stop()
    assert "could not record the call: audit store unavailable" in str(raised.value)


def test_restart_keeps_port_grants_and_spend(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path, "", None, Records())
    credential = gateway.grant("run-r", "a", "s", "cli:codex", "m", Budget())
    port = gateway.port
    gateway.stop()
    gateway.start()
    try:
        assert gateway.port == port
        with sdk(gateway, credential) as client, pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model="m", messages=HELLO)
        assert raised.value.status_code == 503  # authenticated, then: no upstream
    finally:
        gateway.stop()
