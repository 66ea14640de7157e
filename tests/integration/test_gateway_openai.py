"""The gateway in front of an OpenAI-style upstream, driven by the real `openai` SDK over
TLS with the factory CA: Chat Completions and Responses, streamed and not, models, usage
and cost, budget, authentication, retries, truncation, estimates, the key, the cassette."""

from __future__ import annotations

import hashlib
import json
import math
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import vcr
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

from codefactory.engines.gateway import ModelGateway, Outcome, ssl_context_from
from codefactory.engines.session import Budget, Price
from tests.integration.test_gateway_standin import (
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    UPSTREAM_KEY,
    Fault,
    Records,
    Serving,
    StandIn,
    fresh_fixture,  # noqa: F401 - the `fresh` fixture
    make_gateway,
    standin_fixture,  # noqa: F401 - the `standin` fixture
)

PRICES = {"gpt-test": Price(input_per_mtok=2.0, output_per_mtok=8.0)}
_runs = iter(range(10_000))


@pytest.fixture(scope="module")
def gateway_records(
    standin: tuple[StandIn, Serving], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ModelGateway, Records]]:
    _, serving = standin
    records = Records()
    gateway = make_gateway(
        tmp_path_factory.mktemp("gw-openai"),
        f"openai:{serving.base}/v1",
        serving.ca_file,
        records,
        retries=2,
        max_retry_after_s=1.0,
    )
    yield gateway, records
    gateway.stop()


def grant(gateway: ModelGateway, **budget: object) -> tuple[str, str]:
    run_id = f"run-{next(_runs)}"
    limits = {"prices": PRICES, **budget}
    credential = gateway.grant(
        run_id, "agent-7", "alice", "agent:pydantic-ai", "gpt-test", Budget(**limits)
    )  # type: ignore[arg-type]
    return run_id, credential


def client(gateway: ModelGateway, credential: str) -> openai.OpenAI:
    http = httpx.Client(verify=ssl_context_from(gateway.ca_file))
    return openai.OpenAI(
        base_url=gateway.local_url + "/v1", api_key=credential, http_client=http, max_retries=0
    )


HELLO = [{"role": "user", "content": "say hello"}]


def test_chat_not_streamed_is_forwarded_byte_for_byte_and_accounted(fresh) -> None:
    gateway, records, stand_in = fresh
    run_id, credential = grant(gateway)
    with client(gateway, credential) as sdk:
        answer = sdk.chat.completions.create(model="gpt-test", messages=HELLO)
    assert answer.choices[0].message.content == "hello"
    assert answer.usage is not None and answer.usage.prompt_tokens == INPUT_TOKENS
    [call] = records.wait(1)
    [seen] = stand_in.seen
    assert seen.path == "/v1/chat/completions"
    assert call.request_sha256 == hashlib.sha256(seen.body).hexdigest()
    assert (call.run_id, call.agent_id, call.sponsor, call.engine) == (
        run_id,
        "agent-7",
        "alice",
        "agent:pydantic-ai",
    )
    assert (call.protocol, call.method, call.path, call.model) == (
        "openai-chat",
        "POST",
        "/v1/chat/completions",
        "gpt-test",
    )
    assert (call.status, call.attempt, call.outcome, call.streamed) == (200, 1, Outcome.OK, False)
    assert (call.input_tokens, call.output_tokens, call.usage_estimated) == (11, 7, False)
    assert call.cost_usd == pytest.approx((11 * 2.0 + 7 * 8.0) / 1e6)
    assert call.upstream.startswith("openai:https://127.0.0.1:") and call.started_at
    spent = gateway.spend(run_id)
    assert (spent.requests, spent.input_tokens, spent.output_tokens) == (1, 11, 7)
    assert spent.cost_usd == pytest.approx(call.cost_usd) and not spent.estimated


def test_chat_streamed_reads_the_usage_chunk(fresh) -> None:
    gateway, records, _ = fresh
    run_id, credential = grant(gateway)
    with client(gateway, credential) as sdk:
        stream = sdk.chat.completions.create(
            model="gpt-test", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "hello"
    [call] = records.wait(1)
    assert (call.streamed, call.outcome, call.input_tokens, call.output_tokens) == (
        True,
        Outcome.OK,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
    )
    assert not call.usage_estimated and gateway.spend(run_id).output_tokens == OUTPUT_TOKENS


def test_chat_stream_without_usage_is_estimated_from_byte_sizes(fresh) -> None:
    gateway, records, stand_in = fresh
    run_id, credential = grant(gateway)
    with client(gateway, credential) as sdk:
        chunks = list(sdk.chat.completions.create(model="gpt-test", messages=HELLO, stream=True))
    assert chunks
    [call] = records.wait(1)
    [seen] = stand_in.seen
    assert call.usage_estimated and call.outcome is Outcome.OK
    assert call.input_tokens == math.ceil(len(seen.body) / 3)
    body = Path(gateway.cassette(run_id)).read_text()
    assert call.output_tokens > 0 and "[DONE]" in body
    assert gateway.spend(run_id).estimated


@pytest.mark.parametrize("stream", [False, True])
def test_responses_usage_is_recorded(fresh, stream: bool) -> None:
    gateway, records, stand_in = fresh
    run_id, credential = grant(gateway)
    with client(gateway, credential) as sdk:
        if stream:
            events = list(sdk.responses.create(model="gpt-test", input="hi", stream=True))
            assert events[-1].type == "response.completed"
        else:
            assert sdk.responses.create(model="gpt-test", input="hi").output_text == "hello"
    [call] = records.wait(1)
    assert stand_in.seen[0].path == "/v1/responses"
    assert (call.protocol, call.streamed, call.input_tokens, call.output_tokens) == (
        "openai-responses",
        stream,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
    )
    assert call.outcome is Outcome.OK and not call.usage_estimated


def test_models_are_listed_without_spending_a_request(fresh) -> None:
    gateway, records, _ = fresh
    run_id, credential = grant(gateway, requests=1)
    with client(gateway, credential) as sdk:
        assert [m.id for m in sdk.models.list()] == ["gpt-test"]
        sdk.chat.completions.create(model="gpt-test", messages=HELLO)
    calls = records.wait(2)
    assert [c.protocol for c in calls] == ["models", "openai-chat"]
    assert gateway.spend(run_id).requests == 1


def test_upstream_key_reaches_the_upstream_and_never_the_caller(fresh) -> None:
    gateway, records, stand_in = fresh
    run_id, credential = grant(gateway)
    with httpx.Client(verify=ssl_context_from(gateway.ca_file)) as http:
        answer = http.post(
            gateway.local_url + "/v1/chat/completions",
            headers={
                "Authorization": f"Bearer {credential}",
                "Connection": "keep-alive, x-hop",
                "x-hop": "1",
                "x-custom": "dropped",
            },
            json={"model": "gpt-test", "messages": HELLO},
        )
    assert answer.status_code == 200
    [seen] = stand_in.seen
    assert seen.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "x-custom" not in seen.headers and "x-hop" not in seen.headers
    assert credential not in json.dumps(seen.headers)
    shown = json.dumps(dict(answer.headers)) + answer.text
    assert UPSTREAM_KEY not in shown and answer.headers["x-request-id"] == "req_standin"
    records.wait(1)
    cassette = gateway.cassette(run_id).read_text()
    assert UPSTREAM_KEY not in cassette and credential not in cassette
    assert UPSTREAM_KEY not in repr(records[0])


def test_spent_request_budget_answers_429_that_the_sdk_raises(fresh) -> None:
    gateway, records, stand_in = fresh
    _, credential = grant(gateway, requests=1)
    with client(gateway, credential) as sdk:
        sdk.chat.completions.create(model="gpt-test", messages=HELLO)
        with pytest.raises(openai.RateLimitError) as raised:
            sdk.chat.completions.create(model="gpt-test", messages=HELLO)
    error = raised.value.response.json()["error"]
    assert error == {
        "message": "run budget spent: requests 1/1",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert len(stand_in.seen) == 1
    refused = records.wait(2)[1]
    assert (refused.status, refused.outcome, refused.attempt) == (429, Outcome.BUDGET_SPENT, 0)


def test_spent_output_tokens_are_named(fresh) -> None:
    gateway, _, stand_in = fresh
    _, credential = grant(gateway, output_tokens=5)
    with client(gateway, credential) as sdk:
        sdk.chat.completions.create(model="gpt-test", messages=HELLO)
        with pytest.raises(openai.RateLimitError, match="output_tokens 7/5"):
            sdk.chat.completions.create(model="gpt-test", messages=HELLO)
    assert len(stand_in.seen) == 1


def test_unknown_and_revoked_credentials_get_401(fresh) -> None:
    gateway, records, stand_in = fresh
    run_id, credential = grant(gateway)
    with client(gateway, "cfk-not-a-grant") as sdk, pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="gpt-test", messages=HELLO)
    gateway.revoke(credential)
    with client(gateway, credential) as sdk, pytest.raises(openai.AuthenticationError) as raised:
        sdk.chat.completions.create(model="gpt-test", messages=HELLO)
    assert raised.value.response.json()["error"]["code"] == "invalid_api_key"
    unknown, revoked = records.wait(2)
    assert unknown.outcome is Outcome.UNAUTHENTICATED and unknown.run_id == ""
    assert revoked.run_id == run_id and revoked.error == "credential revoked"
    assert stand_in.seen == []


def test_retries_honour_retry_after_and_every_attempt_is_recorded(fresh) -> None:
    gateway, records, stand_in = fresh
    run_id, credential = grant(gateway)
    stand_in.faults.extend(
        [
            Fault(status=429, headers={"retry-after-ms": "200"}),
            Fault(status=529, headers={"retry-after": "0"}),
        ]
    )
    started = time.monotonic()
    with client(gateway, credential) as sdk:
        answer = sdk.chat.completions.create(model="gpt-test", messages=HELLO)
    assert answer.choices[0].message.content == "hello"
    assert time.monotonic() - started >= 0.2
    calls = records.wait(3)
    assert [(c.attempt, c.status, c.outcome) for c in calls] == [
        (1, 429, Outcome.RETRIED),
        (2, 529, Outcome.RETRIED),
        (3, 200, Outcome.OK),
    ]
    assert len({c.request_sha256 for c in calls}) == 1 and len(stand_in.seen) == 3
    assert gateway.spend(run_id).requests == 3
    cassette = deserialize(gateway.cassette(run_id).read_text(), yamlserializer)
    assert [r["status"]["code"] for r in cassette[1]] == [429, 529, 200]


def test_retries_exhausted_pass_the_last_error_on(fresh) -> None:
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    stand_in.faults.extend([Fault(status=500, headers={"retry-after": "0"})] * 3)
    with client(gateway, credential) as sdk, pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="gpt-test", messages=HELLO)
    calls = records.wait(3)
    assert [c.outcome for c in calls] == [Outcome.RETRIED, Outcome.RETRIED, Outcome.UPSTREAM_ERROR]
    assert "gave up after 3 attempt(s)" in calls[-1].error


def test_retry_after_beyond_the_cap_is_not_waited_for(fresh) -> None:
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    stand_in.faults.append(Fault(status=429, headers={"retry-after": "60"}))
    with client(gateway, credential) as sdk, pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="gpt-test", messages=HELLO)
    [call] = records.wait(1)
    assert call.outcome is Outcome.UPSTREAM_ERROR and "longer than 1s" in call.error
    assert len(stand_in.seen) == 1


def test_retry_stops_when_the_budget_is_spent(fresh) -> None:
    gateway, records, stand_in = fresh
    _, credential = grant(gateway, requests=1)
    stand_in.faults.append(Fault(status=503, headers={"retry-after": "0"}))
    with client(gateway, credential) as sdk, pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="gpt-test", messages=HELLO)
    [call] = records.wait(1)
    assert "run budget spent: requests 1/1" in call.error and len(stand_in.seen) == 1


@pytest.mark.parametrize("path", ["chat", "responses"])
def test_truncated_stream_is_recorded(fresh, path: str) -> None:
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    stand_in.faults.append(Fault(truncate=True))
    with client(gateway, credential) as sdk:
        if path == "chat":
            list(
                sdk.chat.completions.create(
                    model="gpt-test",
                    messages=HELLO,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
        else:
            events = list(sdk.responses.create(model="gpt-test", input="hi", stream=True))
            assert events[-1].type != "response.completed"
    [call] = records.wait(1)
    assert call.outcome is Outcome.TRUNCATED and "end event" in call.error
    # The chat stream lost only `[DONE]`, after its usage; Responses lost the usage too.
    assert call.usage_estimated is (path == "responses")


def test_missing_usage_in_a_body_is_estimated(fresh) -> None:
    gateway, records, stand_in = fresh
    run_id, credential = grant(gateway)
    stand_in.faults.append(Fault(no_usage=True))
    with client(gateway, credential) as sdk:
        sdk.chat.completions.create(model="gpt-test", messages=HELLO)
    [call] = records.wait(1)
    assert call.usage_estimated and call.input_tokens == math.ceil(len(stand_in.seen[0].body) / 3)
    assert gateway.spend(run_id).estimated


def test_unreadable_bodies_and_unknown_paths_are_refused_in_shape(fresh) -> None:
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    headers = {"Authorization": f"Bearer {credential}"}
    with httpx.Client(verify=ssl_context_from(gateway.ca_file), base_url=gateway.local_url) as http:
        not_json = http.post("/v1/chat/completions", headers=headers, content=b"{nope")
        no_model = http.post("/v1/chat/completions", headers=headers, json={"messages": []})
        bad_stream = http.post(
            "/v1/responses", headers=headers, json={"model": "m", "stream": "yes"}
        )
        unknown = http.post("/v1/embeddings", headers=headers, json={"model": "m"})
    assert [r.status_code for r in (not_json, no_model, bad_stream, unknown)] == [
        400,
        400,
        400,
        404,
    ]
    assert not_json.json()["error"]["message"].startswith("request body is not JSON")
    assert "names no model" in no_model.json()["error"]["message"]
    assert unknown.json()["error"]["message"] == "the model gateway serves no POST /v1/embeddings"
    assert [c.outcome for c in records.wait(4)] == [Outcome.BAD_REQUEST] * 3 + [
        Outcome.UNKNOWN_ENDPOINT
    ]
    assert stand_in.seen == []


def test_cassette_is_vcrpy_format_and_replays_under_vcrpy(fresh) -> None:
    gateway, records, stand_in = fresh
    run_id, credential = grant(gateway)
    with client(gateway, credential) as sdk:
        sdk.chat.completions.create(model="gpt-test", messages=HELLO)
        list(sdk.responses.create(model="gpt-test", input="hi", stream=True))
    records.wait(2)
    path = gateway.cassette(run_id)
    requests, responses = deserialize(path.read_text(), yamlserializer)
    assert [r.method for r in requests] == ["POST", "POST"]
    assert (
        requests[0].uri == f"{gateway.settings.upstream.removeprefix('openai:')}/chat/completions"
    )
    assert requests[0].body == stand_in.seen[0].body
    assert "authorization" not in {k.lower() for k in requests[0].headers}
    assert responses[1]["status"] == {"code": 200, "message": "OK"}
    assert responses[1]["body"]["string"].endswith(b"\n\n")
    # vcrpy itself answers the recorded exchange, byte for byte, with no server involved.
    stand_in.reset()
    with vcr.use_cassette(str(path), record_mode="none", match_on=["method", "uri", "body"]):
        with httpx.Client() as http:
            again = http.post(requests[1].uri, content=requests[1].body)
    assert again.content == responses[1]["body"]["string"]
    assert stand_in.seen == []


def test_stream_events_reach_the_caller_as_they_arrive(fresh) -> None:
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    stand_in.faults.append(Fault(stall_s=1.0))
    body = {"model": "gpt-test", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {credential}"}
    with httpx.Client(verify=ssl_context_from(gateway.ca_file)) as http:
        started = time.monotonic()
        with http.stream(
            "POST", gateway.local_url + "/v1/chat/completions", json=body, headers=headers
        ) as answer:
            chunks = answer.iter_raw()
            first = next(chunks)
            first_at = time.monotonic() - started
            rest = b"".join(chunks)
        total = time.monotonic() - started
    assert first.startswith(b"data: ") and first_at < 0.8 <= total
    assert rest.endswith(b"data: [DONE]\n\n")
    assert records.wait(1)[0].outcome is Outcome.OK


def test_a_caller_leaving_mid_stream_is_recorded_truncated(fresh) -> None:
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    stand_in.faults.append(Fault(stall_s=1.0))
    body = {"model": "gpt-test", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {credential}"}
    with httpx.Client(verify=ssl_context_from(gateway.ca_file)) as http:
        with http.stream(
            "POST", gateway.local_url + "/v1/chat/completions", json=body, headers=headers
        ) as answer:
            next(answer.iter_raw())
    [call] = records.wait(1, timeout_s=10)
    assert call.outcome is Outcome.TRUNCATED and call.streamed


def test_a_model_the_grant_does_not_name_is_refused(fresh) -> None:
    """G1: the model is the grant's (or one of its extra models, priced); the upstream sees
    nothing else, and nothing is spent."""
    gateway, records, stand_in = fresh
    run_id, credential = grant(gateway)
    with client(gateway, credential) as sdk:
        for model in ("o1-pro", "gpt-test-2025-04-14"):
            with pytest.raises(openai.PermissionDeniedError) as raised:
                sdk.chat.completions.create(model=model, messages=HELLO)
            assert raised.value.response.json()["error"]["code"] == "permission_denied"
        with pytest.raises(openai.PermissionDeniedError):
            sdk.responses.create(model="o1-pro", input="hi")
    assert stand_in.seen == [] and gateway.spend(run_id).requests == 0
    calls = records.wait(3)
    assert {(c.status, c.outcome) for c in calls} == {(403, Outcome.MODEL_REFUSED)}
    assert calls[0].model == "o1-pro" and "not cleared for this run" in calls[0].error
    extra_run = f"run-x{next(_runs)}"
    prices = {**PRICES, "gpt-small": Price(input_per_mtok=1.0, output_per_mtok=1.0)}
    extra = gateway.grant(
        extra_run,
        "agent-7",
        "alice",
        "cli:claude-code",
        "gpt-test",
        Budget(prices=prices),
        extra_models=("gpt-small", "gpt-unpriced"),
    )
    with client(gateway, extra) as sdk:
        assert sdk.chat.completions.create(model="gpt-small", messages=HELLO).choices
        with pytest.raises(openai.PermissionDeniedError, match="no price"):
            sdk.chat.completions.create(model="gpt-unpriced", messages=HELLO)
        assert [m.id for m in sdk.models.list()] == ["gpt-test", "gpt-small", "gpt-unpriced"]
    assert [s.path for s in stand_in.seen] == ["/v1/chat/completions"]


def test_models_are_served_from_the_grant_and_ids_are_checked(fresh) -> None:
    """G1, G5: `/v1/models[/{id}]` never reaches the upstream; odd ids are refused."""
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    headers = {"Authorization": f"Bearer {credential}"}
    with httpx.Client(verify=ssl_context_from(gateway.ca_file), base_url=gateway.local_url) as http:
        one = http.get("/v1/models/gpt-test", headers=headers)
        other = http.get("/v1/models/o1-pro", headers=headers)
        odd = [
            http.get(path, headers=headers)
            for path in (
                "/v1/models/%2e%2e",
                "/v1/models/x%3Fapi-version=evil",
                "/v1/models/gpt%23frag",
                "/v1/models/%2e",
            )
        ]
        anthropic = http.get("/v1/models", headers={**headers, "anthropic-version": "2023-06-01"})
    assert one.json() == {
        "id": "gpt-test",
        "object": "model",
        "created": 0,
        "owned_by": "codefactory",
    }
    assert other.status_code == 404 and "not available to this run" in other.text
    assert [r.status_code for r in odd] == [400] * 4
    assert anthropic.json()["data"][0] == {
        "type": "model",
        "id": "gpt-test",
        "display_name": "gpt-test",
        "created_at": "1970-01-01T00:00:00Z",
    }
    assert stand_in.seen == []
    assert [c.outcome for c in records.wait(7)][:2] == [Outcome.OK, Outcome.MODEL_REFUSED]


def test_caller_headers_and_provider_side_tools_do_not_pass(fresh) -> None:
    """G2: billing, forwarding and cookie headers stay behind; server-side tools and
    `store: true` are refused in OpenAI's shape before the upstream sees anything."""
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    headers = {
        "Authorization": f"Bearer {credential}",
        "OpenAI-Organization": "org-someone-else",
        "OpenAI-Project": "proj-unbudgeted",
        "X-Forwarded-For": "10.0.0.1",
        "Cookie": "a=b",
    }
    mcp = {"type": "mcp", "server_label": "x", "server_url": "https://attacker.example/mcp"}
    with httpx.Client(verify=ssl_context_from(gateway.ca_file), base_url=gateway.local_url) as http:
        refused = [
            http.post("/v1/responses", headers=headers, json={"model": "gpt-test", **extra})
            for extra in (
                {"input": "hi", "tools": [mcp]},
                {"input": "hi", "tools": [{"type": "web_search"}]},
                {"input": "hi", "store": True},
            )
        ]
        searched = http.post(
            "/v1/chat/completions",
            headers=headers,
            json={"model": "gpt-test", "messages": HELLO, "web_search_options": {}},
        )
        plain = http.post(
            "/v1/responses",
            headers=headers,
            json={"model": "gpt-test", "input": "hi", "tools": [{"type": "function", "name": "f"}]},
        )
    assert [r.status_code for r in (*refused, searched)] == [400] * 4
    assert refused[0].json()["error"]["message"].startswith("tools[0] has type 'mcp'")
    assert plain.status_code == 200
    [seen] = stand_in.seen
    assert {k for k in seen.headers if k.startswith(("openai-", "x-forwarded", "cookie"))} == set()
    assert [c.outcome for c in records.wait(5)] == [Outcome.TOOL_REFUSED] * 4 + [Outcome.OK]


def test_calls_without_a_valid_credential_are_not_recorded_one_by_one(standin, tmp_path) -> None:
    """G3: no body is read before the credential is checked, and anonymous calls become one
    record of their kind at once, then one counted record (here: at stop)."""
    _, serving = standin
    records = Records()
    gateway = make_gateway(tmp_path, f"openai:{serving.base}/v1", serving.ca_file, records)
    try:
        context = ssl_context_from(gateway.ca_file)
        with httpx.Client(verify=context, base_url=gateway.local_url) as http:
            for index in range(50):
                answer = http.get(f"/anything-{index}", headers={"x-api-key": f"guess-{index}"})
                assert answer.status_code == 401
        # A declared 1 MB body that never comes: answered at once, not awaited.
        with socket.create_connection(("127.0.0.1", gateway.port)) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.settimeout(5)
                tls.sendall(
                    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    b"Authorization: Bearer cfk-guess\r\nContent-Length: 1000000\r\n\r\n{"
                )
                assert tls.recv(4096).startswith(b"HTTP/1.1 401 ")
        assert len(records) == 1 and records[0].count == 1
    finally:
        gateway.stop()
    first, aggregate = records
    assert (first.outcome, first.error, first.path) == (
        Outcome.UNAUTHENTICATED,
        "unknown credential",
        "/anything-0",
    )
    assert (aggregate.outcome, aggregate.count, aggregate.path) == (
        Outcome.UNAUTHENTICATED,
        50,
        "/anything-1",
    )


def test_body_limits_and_deadlines(fresh, standin, tmp_path) -> None:
    """G3, G6: a declared body over the cap is refused before reading; a body that does not
    arrive in time is 408; a request head that does not arrive in time closes the
    connection; connections past the cap are closed."""
    _, serving = standin
    records = Records()
    gateway = make_gateway(
        tmp_path,
        f"openai:{serving.base}/v1",
        serving.ca_file,
        records,
        max_request_bytes=1000,
        body_timeout_s=0.5,
        header_timeout_s=0.5,
        max_connections=3,
    )
    credential = gateway.grant("run-limits", "a", "s", "cli:codex", "gpt-test", Budget())
    context = ssl_context_from(gateway.ca_file)

    def connect() -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", gateway.port))
        tls = context.wrap_socket(raw, server_hostname="localhost")
        tls.settimeout(5)
        return tls

    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-api-key: {credential}\r\n"
    try:
        with connect() as tls:
            tls.sendall((head + "Content-Length: 1001\r\n\r\n").encode())
            assert b"413" in tls.recv(4096).split(b"\r\n")[0]
        with connect() as tls:
            tls.sendall((head + "Content-Length: 100\r\n\r\n{").encode())
            started = time.monotonic()
            assert b"408" in tls.recv(4096).split(b"\r\n")[0]
            assert time.monotonic() - started < 3
        with connect() as tls:
            tls.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            assert tls.recv(4096) == b""  # closed after header_timeout_s
        with httpx.Client(verify=context, base_url=gateway.local_url) as http:
            big = http.post(
                "/v1/chat/completions",
                headers={"x-api-key": credential},
                content=(b"x" for _ in range(2000)),  # chunked: no length to refuse early
            )
        assert big.status_code == 413
        held = [connect() for _ in range(3)]
        extra = connect()
        try:
            assert extra.recv(4096) == b""  # past max_connections: closed at once
        finally:
            for tls in (*held, extra):
                tls.close()
    finally:
        gateway.stop()
    outcomes = [(c.status, c.outcome) for c in records]
    assert outcomes == [(413, Outcome.BAD_REQUEST), (408, Outcome.BAD_REQUEST)] + [
        (413, Outcome.BAD_REQUEST)
    ]


def test_concurrent_calls_cannot_overshoot_the_budget(fresh) -> None:
    """G4: at most `max_concurrent_calls` (2) calls of a run in flight; each holds its worst
    case (its `max_tokens`, or the rest of the output cap), so concurrent calls cannot
    spend past a token cap."""
    gateway, records, stand_in = fresh
    results: list[int] = []

    def call(credential: str, max_tokens: int | None) -> None:
        body: dict[str, object] = {"model": "gpt-test", "messages": HELLO}
        if max_tokens:
            body["max_tokens"] = max_tokens
        with httpx.Client(verify=ssl_context_from(gateway.ca_file)) as http:
            answer = http.post(
                gateway.local_url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {credential}"},
                json=body,
            )
            results.append(answer.status_code)

    def overlapping(credential: str, max_tokens: int | None, count: int) -> None:
        threads = [threading.Thread(target=call, args=(credential, max_tokens))]
        threads[0].start()
        for _ in range(count - 1):
            time.sleep(0.3)  # the calls before are in flight at the stand-in
            threads.append(threading.Thread(target=call, args=(credential, max_tokens)))
            threads[-1].start()
        for thread in threads:
            thread.join()

    _, credential = grant(gateway, output_tokens=1000)
    stand_in.faults.extend([Fault(delay_s=1.0), Fault(delay_s=1.0)])
    overlapping(credential, 7, 3)
    assert sorted(results) == [200, 200, 429]
    busy = next(c for c in records.wait(3) if c.status == 429)
    assert busy.outcome is Outcome.CONCURRENCY_LIMIT and "2 calls of this run" in busy.error
    assert len(stand_in.seen) == 2
    # Without `max_tokens`, the first call holds the rest of the output cap: the second
    # waits (429 with `retry-after`) instead of spending past the cap alongside it.
    records.clear()
    results.clear()
    run_id, credential = grant(gateway, output_tokens=10)
    stand_in.faults.append(Fault(delay_s=1.0))
    overlapping(credential, None, 2)
    assert sorted(results) == [200, 429]
    assert gateway.spend(run_id).output_tokens == OUTPUT_TOKENS
    refused = next(c for c in records.wait(2) if c.status == 429)
    assert "output_tokens 10/10 (with 1 call(s) in flight)" in refused.error


def test_upstream_answers_are_capped(standin, tmp_path) -> None:
    """A hostile upstream cannot make the gateway buffer without end."""
    stand_in, serving = standin
    stand_in.reset()
    records = Records()
    gateway = make_gateway(
        tmp_path, f"openai:{serving.base}/v1", serving.ca_file, records, max_response_bytes=200
    )
    try:
        run_id = "run-capped"
        credential = gateway.grant(run_id, "a", "s", "cli:codex", "gpt-test", Budget())
        with client(gateway, credential) as sdk:
            with pytest.raises(openai.APIStatusError) as raised:
                sdk.chat.completions.create(model="gpt-test", messages=HELLO)
            list(sdk.chat.completions.create(model="gpt-test", messages=HELLO, stream=True))
    finally:
        gateway.stop()
    assert raised.value.status_code == 502
    cut, streamed = records.wait(2)
    assert cut.outcome is Outcome.UPSTREAM_ERROR and "longer than 200 bytes" in cut.error
    assert cut.usage_estimated and gateway.spend(run_id).output_tokens > 0
    assert streamed.outcome is Outcome.TRUNCATED and "longer than 200 bytes" in streamed.error


def test_unexpected_failures_answer_in_shape_and_are_recorded(fresh, monkeypatch) -> None:
    """G7: bodies json cannot parse are 400s, and anything unforeseen is a recorded 500 in
    the provider's shape, not a plain-text crash."""
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    headers = {"Authorization": f"Bearer {credential}", "content-type": "application/json"}
    nested = b'{"model":"gpt-test","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    huge = b'{"model":"gpt-test","n":' + b"9" * 5000 + b"}"

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    with httpx.Client(verify=ssl_context_from(gateway.ca_file), base_url=gateway.local_url) as http:
        bad = [
            http.post("/v1/chat/completions", headers=headers, content=b) for b in (nested, huge)
        ]
        monkeypatch.setattr("codefactory.engines.gateway.relay.model_refusal", broken)
        failed = http.post(
            "/v1/chat/completions", headers=headers, json={"model": "gpt-test", "messages": HELLO}
        )
    assert [r.status_code for r in bad] == [400, 400]
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "server_error"
    assert "RuntimeError" in failed.json()["error"]["message"]
    calls = records.wait(3)
    assert [c.outcome for c in calls] == [
        Outcome.BAD_REQUEST,
        Outcome.BAD_REQUEST,
        Outcome.GATEWAY_ERROR,
    ]
    assert stand_in.seen == []
