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
