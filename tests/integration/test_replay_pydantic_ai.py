"""A tiny pydantic-ai agent with one tool runs whole scripts through the replay upstream
under uvicorn, with each of its three model classes, streamed and not; strict mode and a
looping script stop it the way the harness needs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI
from pydantic_ai import Agent, UsageLimits
from pydantic_ai.exceptions import ModelHTTPError, UsageLimitExceeded
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.usage import RunUsage

from codefactory.engines.replay.server import serving_replay

FIXTURES = Path(__file__).parents[1] / "fixtures" / "transcripts"
FILES = {"a.py": "alpha", "b.py": "beta", "c.py": "gamma"}
SCRIPT = {
    "engine": "agent:pydantic-ai",
    "model": "gpt-4.1-mini",
    "steps": [
        {"tool": {"name": "read_file", "arguments": {"path": "a.py"}}, "expect_result": "alpha"},
        {
            "tools": [
                {"name": "read_file", "arguments": {"path": "b.py"}},
                {"name": "read_file", "arguments": {"path": "c.py"}},
            ],
            "expect_result": "gamma",
        },
        {"text": "Read all three files."},
    ],
}
KINDS = ["chat", "responses", "anthropic"]


@asynccontextmanager
async def model(kind: str, url: str) -> AsyncIterator[Model]:
    """A pydantic-ai model of `kind` pointed at `url`, its SDK client closed at the end (a
    provider's cached client would outlive the event loop)."""
    client: AsyncAnthropic | AsyncOpenAI
    chosen: Model
    if kind == "anthropic":
        client = AsyncAnthropic(base_url=url, api_key="k", max_retries=0)
        chosen = AnthropicModel(
            "replay-claude", provider=AnthropicProvider(anthropic_client=client)
        )
    else:
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        kind_model = OpenAIChatModel if kind == "chat" else OpenAIResponsesModel
        chosen = kind_model("gpt-4.1-mini", provider=OpenAIProvider(openai_client=client))
    try:
        yield chosen
    finally:
        await client.close()


def agent(chosen: Model, files: dict[str, str] = FILES) -> tuple[Agent[None, str], list[str]]:
    """An agent with one tool, `read_file`, and the list of paths it was asked for."""
    built: Agent[None, str] = Agent(chosen, retries=0)
    asked: list[str] = []

    @built.tool_plain
    def read_file(path: str) -> str:
        """Read a file of the workspace."""
        asked.append(path)
        return files.get(path, f"No such file: {path}")

    return built, asked


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("replay") / "script.json"
    path.write_text(json.dumps(SCRIPT))
    with serving_replay(path, strict=True) as served:
        yield served


@pytest.mark.parametrize("kind", KINDS)
def test_the_agent_runs_the_whole_script(url: str, kind: str) -> None:
    async def scenario() -> tuple[str, RunUsage, list[str]]:
        async with model(kind, url) as chosen:
            built, asked = agent(chosen)
            result = await built.run(f"read the files ({kind})")
            return result.output, result.usage, asked

    output, usage, asked = asyncio.run(scenario())
    assert output == "Read all three files."
    # The two calls of step 1 run concurrently, in either order.
    assert asked[0] == "a.py" and sorted(asked) == ["a.py", "b.py", "c.py"]
    assert (usage.requests, usage.tool_calls) == (3, 3)
    assert usage.input_tokens > 0 and usage.output_tokens > 0


@pytest.mark.parametrize("kind", KINDS)
def test_the_agent_runs_the_whole_script_streamed(url: str, kind: str) -> None:
    async def scenario() -> tuple[str, RunUsage, list[str]]:
        async with model(kind, url) as chosen:
            built, asked = agent(chosen)
            async with built.run_stream(f"read the files, streamed ({kind})") as run:
                return await run.get_output(), run.usage, asked

    output, usage, asked = asyncio.run(scenario())
    assert output == "Read all three files."
    assert asked[0] == "a.py" and sorted(asked) == ["a.py", "b.py", "c.py"]
    assert usage.requests == 3 and usage.output_tokens > 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_tool_result_that_differs_fails_the_run_in_strict_mode(url: str, kind: str) -> None:
    async def scenario() -> None:
        async with model(kind, url) as chosen:
            built, _ = agent(chosen, files={"a.py": "something else"})
            await built.run(f"read with a wrong file ({kind})")

    with pytest.raises(ModelHTTPError) as raised:
        asyncio.run(scenario())
    assert raised.value.status_code == 409
    assert "replay mismatch at step 0" in str(raised.value.body)


def test_a_looping_script_is_stopped_by_the_request_budget() -> None:
    async def scenario(url: str) -> list[str]:
        async with model("chat", url) as chosen:
            built, asked = agent(chosen)
            with pytest.raises(UsageLimitExceeded):
                await built.run("loop", usage_limits=UsageLimits(request_limit=5))
            return asked

    with serving_replay(FIXTURES / "looping.json") as served:
        asked = asyncio.run(scenario(served))
    assert asked == ["src/calc.py"] * 5


def test_the_two_tool_fix_fixture_drives_a_two_tool_agent() -> None:
    source = {"src/calc.py": "def add(a, b):\n    return a - b\n"}

    async def scenario(url: str) -> tuple[str, RunUsage]:
        async with model("anthropic", url) as chosen:
            built: Agent[None, str] = Agent(chosen, retries=0)

            @built.tool_plain
            def read_file(path: str) -> str:
                return source[path]

            @built.tool_plain
            def edit_file(path: str, old: str, new: str) -> str:
                source[path] = source[path].replace(old, new)
                return "edited"

            result = await built.run("add() is wrong")
            return result.output, result.usage

    with serving_replay(FIXTURES / "two_tool_fix.json", strict=True) as served:
        output, usage = asyncio.run(scenario(served))
    assert source["src/calc.py"] == "def add(a, b):\n    return a + b\n"
    assert "Fixed add()" in output
    assert usage.output_tokens >= 40  # the script's own usage for the edit step
