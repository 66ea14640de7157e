"""The gateway in front of an OpenAI-style upstream, driven by the real `openai` SDK over
TLS with the factory CA: Chat Completions and Responses, streamed and not, models, usage
and cost, budget, authentication, retries, truncation, estimates, the key, the cassette."""

from __future__ import annotations

import hashlib
import json
import math
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


@pytest.fixture
def fresh(
    gateway_records: tuple[ModelGateway, Records], standin: tuple[StandIn, Serving]
) -> Iterator[tuple[ModelGateway, Records, StandIn]]:
    gateway, records = gateway_records
    records.clear()
    standin[0].reset()
    yield gateway, records, standin[0]


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
                "x-custom": "kept",
            },
            json={"model": "gpt-test", "messages": HELLO},
        )
    assert answer.status_code == 200
    [seen] = stand_in.seen
    assert seen.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen.headers["x-custom"] == "kept" and "x-hop" not in seen.headers
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
