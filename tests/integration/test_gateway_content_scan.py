"""The gateway's second scan, through the real gateway over TLS: a request still carrying a
secret or personal datum is refused (400 in the provider's shape, recorded
`content-refused` naming entity, detector and JSON path), and neither the answer nor the
record holds the value; a request carrying only placeholders is forwarded.

Secrets are assembled from pieces so that this file holds none a scanner would flag."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codefactory.engines.gateway import ModelGateway, Outcome, ssl_context_from
from codefactory.engines.gateway.content_scan import ContentScan
from codefactory.engines.session import Budget
from tests.integration.test_gateway_standin import (
    Records,
    Serving,
    StandIn,
    fresh_fixture,  # noqa: F401 - the `fresh` fixture
    make_gateway,
    standin_fixture,  # noqa: F401 - the `standin` fixture
)

MODEL = "gpt-test"
AWS_KEY_ID = "AKIA" + "IOSFODNN7" + "EXAMPLE"
EMAIL = "jane.doe@bank-customer.co.uk"
_runs = iter(range(10_000))


@pytest.fixture(scope="module")
def gateway_records(
    standin: tuple[StandIn, Serving], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ModelGateway, Records]]:
    _, serving = standin
    records = Records()
    gateway = make_gateway(
        tmp_path_factory.mktemp("gw-scan"), f"openai:{serving.base}", serving.ca_file, records
    )
    yield gateway, records
    gateway.stop()


def post(gateway: ModelGateway, path: str, body: dict[str, Any]) -> httpx.Response:
    credential = gateway.grant(f"run-s{next(_runs)}", "agent-1", "bob", "cli:x", MODEL, Budget())
    headers = {"authorization": f"Bearer {credential}"}
    if path == "/v1/messages":
        headers["anthropic-version"] = "2023-06-01"
    with httpx.Client(verify=ssl_context_from(gateway.ca_file), timeout=30) as http:
        return http.post(gateway.local_url + path, json=body, headers=headers)


def assert_refused(
    response: httpx.Response, records: Records, value: str, *named: str
) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert value not in response.text
    [call] = records.wait(1)
    assert call.outcome is Outcome.CONTENT_REFUSED and call.status == 400
    assert call.attempt == 0  # never forwarded
    for part in named:
        assert part in call.error and part in response.text
    assert value not in repr(call)
    document: dict[str, Any] = response.json()
    return document


def test_aws_key_in_a_chat_message_is_refused(fresh) -> None:
    gateway, records, stand_in = fresh
    messages = [{"role": "user", "content": f"deploy with key {AWS_KEY_ID} please"}]
    response = post(gateway, "/v1/chat/completions", {"model": MODEL, "messages": messages})
    body = assert_refused(
        response,
        records,
        AWS_KEY_ID,
        "SECRET_AWS",
        "detect-secrets:AWSKeyDetector",
        "messages[0].content",
    )
    assert body["error"]["type"] == "invalid_request_error"  # OpenAI's shape
    assert stand_in.seen == []


def test_email_in_a_tool_result_is_refused(fresh) -> None:
    gateway, records, stand_in = fresh
    call = {"id": "call_1", "type": "function", "function": {"name": "read", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "who filed PAY-12?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"reporter": EMAIL})},
    ]
    response = post(gateway, "/v1/chat/completions", {"model": MODEL, "messages": messages})
    assert_refused(
        response,
        records,
        EMAIL,
        "EMAIL_ADDRESS",
        "presidio:EmailRecognizer",
        "messages[2].content",
    )
    assert stand_in.seen == []


def test_email_in_anthropic_system_text_is_refused(fresh) -> None:
    gateway, records, stand_in = fresh
    body = {
        "model": MODEL,
        "max_tokens": 64,
        "system": [{"type": "text", "text": "You are helpful."}, {"type": "text", "text": EMAIL}],
        "messages": [{"role": "user", "content": "hello"}],
    }
    response = post(gateway, "/v1/messages", body)
    document = assert_refused(
        response, records, EMAIL, "EMAIL_ADDRESS", "presidio:EmailRecognizer", "system[1].text"
    )
    assert document["type"] == "error"  # Anthropic's shape
    assert document["error"]["type"] == "invalid_request_error"
    assert stand_in.seen == []


def test_placeholders_pass(fresh) -> None:
    gateway, records, stand_in = fresh
    messages = [
        {"role": "system", "content": "Never reveal <SECRET_AWS_1>."},
        {"role": "user", "content": "Reply to <EMAIL_ADDRESS_1> about card <CREDIT_CARD_2>."},
        {"role": "tool", "tool_call_id": "c", "content": '{"reporter": "<EMAIL_ADDRESS_1>"}'},
    ]
    response = post(gateway, "/v1/chat/completions", {"model": MODEL, "messages": messages})
    assert response.status_code == 200, response.text
    assert [c.outcome for c in records.wait(1)] == [Outcome.OK]
    assert len(stand_in.seen) == 1


def test_responses_and_tool_arguments_are_read() -> None:
    # Without a server: which texts of a Responses request and an Anthropic tool call the
    # scan reads, and where it says they are.
    scan = ContentScan()
    responses = {
        "instructions": "be brief",
        "input": [
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "mail",
                "arguments": f'{{"to": "{EMAIL}"}}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "sent"},
        ],
    }
    [found] = scan.findings(responses)
    assert (found.path, found.entity) == ("input[0].arguments", "EMAIL_ADDRESS")
    assert scan.findings(responses) == [found]  # again, from the cache of digests
    anthropic = {
        "messages": [
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "run",
                        "input": {"env": {"K": AWS_KEY_ID}},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "ok"}],
                    }
                ],
            },
        ]
    }
    [found] = scan.findings(anthropic)
    assert (found.path, found.entity) == ("messages[0].content[0].input.env.K", "SECRET_AWS")
    assert (
        scan.findings({"messages": [{"role": "user", "content": "version 1.2.3 at 10.0.0.1"}]})
        == []
    )


def test_every_field_of_the_request_is_read_but_binary_payloads() -> None:
    # the red team's hiding places: tool descriptions, predictions, response schemas,
    # metadata and an Anthropic text document under `data`; a base64 image is not text
    scan = ContentScan()
    openai = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "description": EMAIL}}],
        "prediction": {"type": "content", "content": f"key {AWS_KEY_ID}"},
    }
    assert {f.path for f in scan.findings(openai)} == {
        "tools[0].function.description",
        "prediction.content",
    }
    anthropic = {
        "model": MODEL,
        "metadata": {"user_id": EMAIL},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "text", "data": EMAIL}},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": EMAIL},
                    },
                ],
            }
        ],
    }
    assert {f.path for f in scan.findings(anthropic)} == {
        "metadata.user_id",
        "messages[0].content[0].source.data",
    }


def test_values_hidden_in_other_spellings_are_found_and_ordinary_code_is_not() -> None:
    scan = ContentScan()
    hidden = [
        EMAIL.replace("@", "%40"),
        EMAIL.replace("@", "&#64;"),
        EMAIL.replace("@", "\\u0040"),
        EMAIL.replace("@", "\uff20"),  # full-width
        "card " + " ".join(["\uff14\uff11\uff11\uff11"] + ["\uff11\uff11\uff11\uff11"] * 3),
    ]
    for text in hidden:
        found = scan.findings({"messages": [{"role": "user", "content": text}]})
        assert [f.path for f in found] == ["messages[0].content (decoded)"], text
    source = Path(__file__).resolve().parents[2] / "src" / "codefactory"
    code = [path.read_text() for path in sorted((source / "sandbox").glob("*.py"))]
    messages = [{"role": "user", "content": text} for text in code]
    assert scan.findings({"messages": messages}) == []
