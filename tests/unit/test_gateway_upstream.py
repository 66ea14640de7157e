"""Upstream settings, where calls go, and which headers cross the gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from codefactory.engines.gateway.errors import GatewayConfigError
from codefactory.engines.gateway.headers import (
    betas,
    caller_credentials,
    outbound,
    retry_delay,
    returned,
)
from codefactory.engines.gateway.protocols import match_endpoint
from codefactory.engines.gateway.upstream import parse_upstream
from codefactory.engines.settings import GatewaySettings


def url(setting: str, method: str, path: str, query: str = "") -> str | None:
    upstream = parse_upstream(setting)
    endpoint = match_endpoint(method, path, query)
    assert upstream is not None and endpoint is not None
    return upstream.url_for(endpoint)


def test_openai_anthropic_and_replay_urls(tmp_path: Path) -> None:
    assert url("openai:https://api.example.com/v1/", "POST", "/v1/chat/completions") == (
        "https://api.example.com/v1/chat/completions"
    )
    assert url("openai:https://proxy.bank/llm/v1", "GET", "/v1/models") == (
        "https://proxy.bank/llm/v1/models"
    )
    assert url("anthropic:https://api.anthropic.com", "POST", "/v1/messages", "beta=true") == (
        "https://api.anthropic.com/v1/messages?beta=true"
    )
    transcript = tmp_path / "t.json"
    transcript.write_text("{}")
    assert url(f"replay:{transcript}", "POST", "/v1/responses") == (
        "http://replay.invalid/v1/responses"
    )
    assert parse_upstream("") is None and parse_upstream("  ") is None


def test_azure_urls() -> None:
    deployment = "azure:https://res.openai.azure.com/openai/deployments/gpt4o"
    assert url(deployment, "POST", "/v1/chat/completions") == (
        "https://res.openai.azure.com/openai/deployments/gpt4o/chat/completions"
        "?api-version=2024-10-21"
    )
    assert url(deployment + "?api-version=2025-03-01-preview", "POST", "/v1/responses") == (
        "https://res.openai.azure.com/openai/responses?api-version=2025-03-01-preview"
    )
    assert url(deployment, "POST", "/v1/messages") is None
    assert url("azure:https://res.openai.azure.com/openai/v1", "POST", "/v1/responses") == (
        "https://res.openai.azure.com/openai/v1/responses"
    )


def test_key_headers(tmp_path: Path) -> None:
    def keyed(setting: str) -> dict[str, str]:
        upstream = parse_upstream(setting)
        assert upstream is not None
        return upstream.key_headers("k")

    assert keyed("openai:https://h/v1") == {"authorization": "Bearer k"}
    assert keyed("anthropic:https://h") == {"x-api-key": "k"}
    assert keyed("azure:https://h/openai/v1") == {"api-key": "k"}
    (tmp_path / "t").write_text("{}")
    assert keyed(f"replay:{tmp_path / 't'}") == {}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("gpt-4", "malformed; accepted: replay:PATH"),
        ("openai:", "malformed"),
        ("bedrock:https://h", "unknown kind 'bedrock'"),
        ("openai:ftp://h/v1", "not an http(s) URL"),
        ("openai:https:///v1", "not an http(s) URL"),
        ("openai:http://api.example.com/v1", "plain http only for a loopback host"),
        ("anthropic:https://user:pw@h", "credentials in the URL"),
        ("azure:https://h/somewhere", "must end /openai/deployments/NAME or /openai/v1"),
        ("replay:/nonexistent/transcript.json", "no transcript file"),
    ],
)
def test_bad_upstreams_name_the_accepted_forms(setting: str, message: str) -> None:
    with pytest.raises(GatewayConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_upstream(setting)


def test_outbound_headers_drop_credentials_and_hop_by_hop() -> None:
    caller = [
        ("Authorization", "Bearer cfk-run"),
        ("x-api-key", "cfk-run"),
        ("api-key", "cfk-run"),
        ("Host", "gateway"),
        ("Content-Length", "9"),
        ("Connection", "close, x-private"),
        ("x-private", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Accept-Encoding", "gzip"),
        ("anthropic-beta", "b1"),
        ("Content-Type", "application/json"),
    ]
    sent = outbound(caller, {"x-api-key": "sk-up"}, anthropic=True)
    assert sent == {
        "content-type": "application/json",
        "accept-encoding": "identity",
        "anthropic-version": "2023-06-01",
        "x-api-key": "sk-up",
    }
    assert (
        outbound([("anthropic-version", "2024-01-01")], {}, anthropic=True)["anthropic-version"]
        == "2024-01-01"
    )
    assert "anthropic-version" not in outbound([], {}, anthropic=False)


# What Claude Code 2.1.328 sends on every Messages call (captured from the CLI itself).
CLAUDE_CODE_BETAS = (
    "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,"
    "thinking-display-updates-2026-08-18"
)


def test_outbound_headers_are_an_allow_list() -> None:
    """G2: only content type, accept, Anthropic's version and vetted betas cross; billing,
    forwarding, cookie and SDK headers stay behind, and so do betas that let the provider
    act outside the sandbox."""
    families = GatewaySettings().anthropic_betas
    caller = [
        ("OpenAI-Organization", "org-someone-else"),
        ("OpenAI-Project", "proj-unbudgeted"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("Forwarded", "for=10.0.0.1"),
        ("Cookie", "a=b"),
        ("User-Agent", "claude-cli/2.1.328"),
        ("x-stainless-os", "Linux"),
        ("anthropic-dangerous-direct-browser-access", "true"),
        ("Accept", "application/json"),
        ("anthropic-beta", "mcp-client-2025-04-04, files-api-2025-04-14," + CLAUDE_CODE_BETAS),
        (
            "anthropic-beta",
            "web-fetch-2025-09-10,code-execution-2025-08-25,prompt-caching-2024-07-31",
        ),
        ("anthropic-beta", "computer-use-2025-01-24,unknown-2025-01-01,b1"),
    ]
    sent = outbound(caller, {}, anthropic=True, beta_families=families)
    assert set(sent) == {"accept", "anthropic-beta", "accept-encoding", "anthropic-version"}
    assert sent["anthropic-beta"] == CLAUDE_CODE_BETAS + ",prompt-caching-2024-07-31"
    assert betas("mcp-client-2025-04-04", ["mcp-client"]) == ""  # never, whatever is vetted
    assert "anthropic-beta" not in outbound(
        [("anthropic-beta", "mcp-client-2025-04-04")], {}, anthropic=True, beta_families=families
    )


def test_returned_headers() -> None:
    upstream = [
        ("Content-Type", "text/event-stream"),
        ("Content-Length", "5"),
        ("Set-Cookie", "a=b"),
        ("Transfer-Encoding", "chunked"),
        ("x-request-id", "r"),
        ("openai-organization", "org-bank"),
        ("x-ratelimit-remaining-tokens", "9"),
        ("retry-after", "2"),
        ("request-id", "req_a"),
    ]
    assert returned(upstream) == [
        ("Content-Type", "text/event-stream"),
        ("x-request-id", "r"),
        ("retry-after", "2"),
        ("request-id", "req_a"),
    ]


def test_caller_credentials_in_order() -> None:
    assert caller_credentials({"authorization": "Bearer a", "x-api-key": "b", "api-key": "c"}) == [
        "a",
        "b",
        "c",
    ]
    assert caller_credentials({"authorization": "Basic xyz"}) == []
    assert caller_credentials({"authorization": "bearer  t "}) == ["t"]


def test_retry_delay() -> None:
    assert retry_delay({"retry-after-ms": "250", "retry-after": "9"}, 1, 10) == 0.25
    assert retry_delay({"retry-after": "3"}, 1, 10) == 3.0
    assert retry_delay({"retry-after": "30"}, 1, 10) is None
    assert retry_delay({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 1, 10) == 0.0
    assert retry_delay({"retry-after": "soon"}, 1, 10) == 0.5
    assert [retry_delay({}, n, 1.5) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]
