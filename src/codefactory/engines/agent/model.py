"""The agent's model: a pydantic-ai model whose provider points at the run's model gateway.

The SDK clients get their own HTTP client that trusts only the factory CA (`ca_file`), never
the environment's proxies or CA bundle, and retry at most `max_retries` times: the gateway
already retries upstream faults within the run's budget.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

from codefactory.engines.errors import EngineError
from codefactory.engines.session import ModelAccess

PROTOCOLS = ("openai-chat", "openai-responses", "anthropic-messages")


def trusting_only(ca_file: str) -> ssl.SSLContext:
    """A TLS client context (hostname checked) trusting only the CAs in the PEM `ca_file`.

    Raises `EngineError` when the file is missing or holds no certificate."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise EngineError(f"cannot load the gateway CA from {ca_file}: {exc}") from exc


@asynccontextmanager
async def gateway_model(
    access: ModelAccess, *, max_retries: int = 1, timeout_s: float = 300.0
) -> AsyncIterator[Model]:
    """The model `access` names, reached through the gateway; its HTTP client is closed on
    exit. Raises `EngineError` for an unknown protocol or an unusable CA file."""
    if access.protocol not in PROTOCOLS:
        raise EngineError(
            f"unknown model protocol {access.protocol!r}: expected one of {', '.join(PROTOCOLS)}"
        )
    verify = trusting_only(str(access.ca_file))
    async with httpx2.AsyncClient(verify=verify, trust_env=False, timeout=timeout_s) as client:
        yield _model(access, client, max_retries)


def _model(access: ModelAccess, client: httpx2.AsyncClient, max_retries: int) -> Model:
    base = access.in_process_url.rstrip("/")
    if access.protocol == "anthropic-messages":
        anthropic = AsyncAnthropic(
            base_url=base, api_key=access.credential, http_client=client, max_retries=max_retries
        )
        return AnthropicModel(access.model, provider=AnthropicProvider(anthropic_client=anthropic))
    openai = AsyncOpenAI(
        base_url=f"{base}/v1",
        api_key=access.credential,
        http_client=client,
        max_retries=max_retries,
    )
    provider = OpenAIProvider(openai_client=openai)
    if access.protocol == "openai-responses":
        return OpenAIResponsesModel(access.model, provider=provider)
    return OpenAIChatModel(access.model, provider=provider)
