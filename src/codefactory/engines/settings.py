"""Settings of the engines and the model gateway (`engines` and `gateway` sections).

`CODEFACTORY_ENGINES__REGISTRY=PATH` names the engine registry file;
`CODEFACTORY_GATEWAY__UPSTREAM` selects the gateway's upstream: `replay:PATH` (a transcript,
cassette or script), `openai:https://HOST/v1`, `anthropic:https://HOST` or
`azure:https://HOST/...`; `CODEFACTORY_GATEWAY__UPSTREAM_KEY` its key (never given to an
engine) and `CODEFACTORY_GATEWAY__UPSTREAM_CA` an extra CA file to trust for it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class EngineSettings(BaseModel):
    """Which engines may run: the bank's engine registry."""

    model_config = ConfigDict(extra="forbid")

    registry: Path | None = None
    """The engine registry (TOML); default: the registry shipped with the package."""
    defaults: dict[str, str] = Field(
        default_factory=lambda: {
            "bump_dependency": "recipe:dependency-bump",
            "fix_lint": "recipe:lint-fix",
            "general_change": "agent:pydantic-ai",
        }
    )
    """Change kind → the engine a run gets when the trigger asks for none (`trigger
    --engine` asks for one); the registry and policy still decide."""


class GatewaySettings(BaseModel):
    """The model gateway every language-model engine reaches its model through."""

    model_config = ConfigDict(extra="forbid")

    upstream: str = ""
    """`replay:PATH`, `openai:URL`, `anthropic:URL` or `azure:URL`; empty: no model is
    reachable and every language-model engine run fails with that reason."""
    upstream_key: SecretStr = SecretStr("")
    """The provider's key; stays in the factory process."""
    upstream_ca: Path | None = None
    """An extra CA file to trust for the upstream (a bank's internal TLS proxy)."""
    replay_strict: bool = False
    """For a `replay:` upstream: answer HTTP 409 (and so fail the run) when a tool result
    the engine sends differs from the transcript's `expect_result`, or when a request
    matches no recorded interaction of a cassette (`CODEFACTORY_GATEWAY__REPLAY_STRICT`)."""
    host: str = "gateway.codefactory.internal"
    """The harness host name engines use; resolved by the egress proxy to `bind`."""
    bind: str = "127.0.0.1"
    """The loopback address the gateway listens on."""
    port: int = 0
    """Its port; 0 picks a free one at start."""
    retries: int = 2
    """Upstream attempts after the first for 429, 500, 502, 503 and 529, within budget."""
    max_retry_after_s: float = 10.0
    """The longest `retry-after` the gateway waits before a retry; longer is an error."""
    timeout_s: float = 300.0
    """Per upstream request."""
    max_request_bytes: int = 8 * 1024 * 1024
    """The largest request body read from an authenticated caller (a larger `content-length`
    is refused before any byte of the body is read); 413 beyond it."""
    max_response_bytes: int = 32 * 1024 * 1024
    """The most the gateway buffers or streams of one upstream response; beyond it the
    answer is cut (502, or a truncated stream)."""
    body_timeout_s: float = 30.0
    """The deadline for receiving a request body once its headers arrived; 408 after it."""
    header_timeout_s: float = 10.0
    """The deadline for a connection to send a complete request head (after the TLS
    handshake or the previous response); closed after it."""
    keep_alive_s: float = 5.0
    """How long an idle keep-alive connection stays open."""
    max_connections: int = 128
    """Open connections the listener keeps; more are closed at once, and requests beyond
    it are answered 503 (uvicorn's `limit_concurrency`)."""
    max_header_bytes: int = 64 * 1024
    """The largest request head (request line and headers) read (h11's incomplete event size)."""
    max_concurrent_calls: int = 2
    """Model calls in flight per run; more are answered 429 with `retry-after`."""
    refusal_flush_s: float = 60.0
    """Calls without a valid credential are recorded in aggregate: the first of a kind at
    once, the rest as one record with a count at most every this many seconds (and at stop)."""
    anthropic_betas: tuple[str, ...] = (
        "claude-code",
        "interleaved-thinking",
        "context-management",
        "thinking-token-count",
        "thinking-display-updates",
        "advanced-tool-use",
        "prompt-caching",
        "fine-grained-tool-streaming",
        "token-efficient-tools",
        "output-128k",
    )
    """`anthropic-beta` families forwarded upstream (`NAME-YYYY-MM-DD`); other values are
    dropped. Families that let the provider act outside the sandbox (`mcp-client`,
    `computer-use`, `code-execution`, `web-fetch`, `web-search`, `files-api`, `skills`,
    `mcp-servers`) are never forwarded, whatever this says."""
