"""The gateway in front of an Anthropic-style upstream, driven by the real `anthropic` SDK
over TLS with the factory CA: Messages streamed and not, the beta path Claude Code uses,
both credential headers, the upstream key as `x-api-key`, errors in Anthropic's shape."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx2
import pytest

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

MODEL = "claude-test"
PRICES = {MODEL: Price(input_per_mtok=3.0, output_per_mtok=15.0)}
HELLO = [{"role": "user", "content": "say hello"}]
_runs = iter(range(10_000))


@pytest.fixture(scope="module")
def gateway_records(
    standin: tuple[StandIn, Serving], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ModelGateway, Records]]:
    _, serving = standin
    records = Records()
    gateway = make_gateway(
        tmp_path_factory.mktemp("gw-anthropic"),
        f"anthropic:{serving.base}",
        serving.ca_file,
        records,
    )
    yield gateway, records
    gateway.stop()


def grant(gateway: ModelGateway, **budget: object) -> tuple[str, str]:
    run_id = f"run-a{next(_runs)}"
    credential = gateway.grant(
        run_id,
        "agent-9",
        "bob",
        "cli:claude-code",
        MODEL,
        Budget(prices=PRICES, **budget),  # type: ignore[arg-type]
    )
    return run_id, credential


def client(gateway: ModelGateway, credential: str, *, bearer: bool = False) -> anthropic.Anthropic:
    http = httpx2.Client(verify=ssl_context_from(gateway.ca_file))  # this SDK speaks httpx2
    key = {"auth_token": credential} if bearer else {"api_key": credential}
    # Claude Code's version header; the gateway passes the caller's on unchanged.
    version = {"anthropic-version": "2023-06-01"}
    return anthropic.Anthropic(
        base_url=gateway.local_url, http_client=http, max_retries=0, default_headers=version, **key
    )


def test_messages_not_streamed_carry_the_upstream_key_as_x_api_key(fresh) -> None:
    gateway, records, stand_in = fresh
    run_id, credential = grant(gateway)
    with client(gateway, credential) as sdk:
        message = sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert message.content[0].text == "hello"  # type: ignore[union-attr]
    [seen] = stand_in.seen
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == UPSTREAM_KEY and "authorization" not in seen.headers
    assert seen.headers["anthropic-version"] == "2023-06-01"
    [call] = records.wait(1)
    assert (call.protocol, call.outcome, call.input_tokens, call.output_tokens) == (
        "anthropic-messages",
        Outcome.OK,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
    )
    assert call.cost_usd == pytest.approx((11 * 3.0 + 7 * 15.0) / 1e6)
    assert gateway.spend(run_id).requests == 1


def test_messages_streamed_sum_message_start_and_message_delta(fresh) -> None:
    gateway, records, _ = fresh
    _, credential = grant(gateway)
    with client(gateway, credential) as sdk:
        with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
            assert stream.get_final_text() == "hello"
    [call] = records.wait(1)
    assert (call.streamed, call.outcome, call.input_tokens, call.output_tokens) == (
        True,
        Outcome.OK,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
    )


def test_beta_path_and_bearer_credential_as_claude_code_sends_them(fresh) -> None:
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    with client(gateway, credential, bearer=True) as sdk:
        sdk.beta.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=HELLO,  # type: ignore[arg-type]
            betas=["interleaved-thinking-2025-05-14"],
            extra_query={"beta": "true"},  # Claude Code calls /v1/messages?beta=true
        )
    [seen] = stand_in.seen
    assert (seen.path, seen.query) == ("/v1/messages", "beta=true")
    assert seen.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert seen.headers["x-api-key"] == UPSTREAM_KEY and credential not in str(seen.headers)
    assert records.wait(1)[0].outcome is Outcome.OK


def test_spent_budget_is_an_anthropic_rate_limit_error(fresh) -> None:
    gateway, records, stand_in = fresh
    _, credential = grant(gateway, input_tokens=0)
    with client(gateway, credential) as sdk, pytest.raises(anthropic.RateLimitError) as raised:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert raised.value.response.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "run budget spent: input_tokens 0/0"},
    }
    assert stand_in.seen == [] and records.wait(1)[0].outcome is Outcome.BUDGET_SPENT


def test_unknown_credential_is_an_anthropic_authentication_error(fresh) -> None:
    gateway, records, stand_in = fresh
    with (
        client(gateway, "cfk-unknown") as sdk,
        pytest.raises(anthropic.AuthenticationError) as raised,
    ):
        sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert raised.value.response.json()["error"] == {
        "type": "authentication_error",
        "message": "unknown credential",
    }
    assert stand_in.seen == [] and records.wait(1)[0].outcome is Outcome.UNAUTHENTICATED


def test_overloaded_then_answered(fresh) -> None:
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    stand_in.faults.append(
        Fault(
            status=529,
            headers={"retry-after": "0"},
            body=b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
        )
    )
    with client(gateway, credential) as sdk:
        assert sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO).content
    assert [c.outcome for c in records.wait(2)] == [Outcome.RETRIED, Outcome.OK]


def test_stream_without_message_stop_is_truncated(fresh) -> None:
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    stand_in.faults.append(Fault(truncate=True))
    with client(gateway, credential) as sdk:
        events = [
            e.type
            for e in sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO, stream=True)
        ]
    assert "message_stop" not in events and "message_delta" in events
    [call] = records.wait(1)
    assert call.outcome is Outcome.TRUNCATED and (call.input_tokens, call.output_tokens) == (
        INPUT_TOKENS,
        OUTPUT_TOKENS,
    )


def test_anthropic_version_defaults_when_the_caller_sends_none(fresh) -> None:
    gateway, _, stand_in = fresh
    _, credential = grant(gateway)
    with httpx2.Client(verify=ssl_context_from(gateway.ca_file)) as http:
        answer = http.post(
            gateway.local_url + "/v1/messages",
            headers={"x-api-key": credential},
            json={"model": MODEL, "max_tokens": 8, "messages": HELLO},
        )
    assert answer.status_code == 200
    assert stand_in.seen[0].headers["anthropic-version"] == "2023-06-01"


# What Claude Code 2.1.328 sends on every call (captured from the CLI itself).
CLAUDE_CODE_BETAS = [
    "claude-code-20250219",
    "interleaved-thinking-2025-05-14",
    "context-management-2025-06-27",
    "thinking-token-count-2026-05-13",
    "advanced-tool-use-2025-11-20",
    "thinking-display-updates-2026-08-18",
]
BASH = {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}


def test_claude_code_betas_and_tools_pass_and_provider_side_ones_do_not(fresh) -> None:
    """G2: Claude Code's betas and its custom tools pass; betas for provider-side work are
    dropped, and server tools and MCP servers are refused in Anthropic's shape."""
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    with client(gateway, credential, bearer=True) as sdk:
        sdk.beta.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=HELLO,  # type: ignore[arg-type]
            tools=[BASH],  # type: ignore[list-item]
            betas=[*CLAUDE_CODE_BETAS, "mcp-client-2025-04-04", "web-fetch-2025-09-10"],
            extra_query={"beta": "true"},
            extra_headers={"OpenAI-Organization": "org-x", "x-app": "cli"},
        )
        refused = []
        for extra in (
            {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]},
            {"tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}]},
            {"mcp_servers": [{"type": "url", "url": "https://attacker.example", "name": "x"}]},
        ):
            with pytest.raises(anthropic.BadRequestError) as raised:
                sdk.messages.create(
                    model=MODEL,
                    max_tokens=64,
                    messages=HELLO,  # type: ignore[arg-type]
                    extra_body=extra,
                )
            refused.append(raised.value.response.json())
    [seen] = stand_in.seen
    assert seen.headers["anthropic-beta"] == ",".join(CLAUDE_CODE_BETAS)
    assert "openai-organization" not in seen.headers and "x-app" not in seen.headers
    assert refused[0]["type"] == "error"
    assert refused[0]["error"]["type"] == "invalid_request_error"
    assert "server tool ('web_search_20250305')" in refused[0]["error"]["message"]
    assert "mcp_servers" in refused[2]["error"]["message"]
    outcomes = [c.outcome for c in records.wait(4)]
    assert outcomes == [Outcome.OK] + [Outcome.TOOL_REFUSED] * 3


def test_other_models_are_refused_and_listed_in_anthropics_shape(fresh) -> None:
    """G1: Anthropic callers get a `permission_error` for another model, and the model list
    from the grant in Anthropic's shape."""
    gateway, records, stand_in = fresh
    _, credential = grant(gateway)
    with client(gateway, credential) as sdk:
        with pytest.raises(anthropic.PermissionDeniedError) as raised:
            sdk.messages.create(model="claude-opus-4-1", max_tokens=64, messages=HELLO)
        assert [m.id for m in sdk.models.list()] == [MODEL]
    assert raised.value.response.json()["error"]["type"] == "permission_error"
    assert stand_in.seen == []
    assert [c.outcome for c in records.wait(2)] == [Outcome.MODEL_REFUSED, Outcome.OK]
