"""Cassettes in vcrpy's own format: record a real exchange with vcrpy around the `openai` SDK
talking to the script-mode server under uvicorn, replay that cassette with cassette mode,
and get the same bytes; then the matching rules and their 409s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import vcr

from codefactory.engines.replay import Cassette, load_transcript
from codefactory.engines.replay.server import serving_replay

SCRIPT = {
    "model": "gpt-4.1-mini",
    "steps": [
        {"tool": {"name": "read_file", "arguments": {"path": "src/calc.py"}}},
        {"text": "Fixed."},
    ],
}
TOOLS: Any = [
    {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}
]
FIRST: Any = [{"role": "user", "content": "fix calc"}]
SECOND: Any = FIRST + [
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_s0n0c0",
                "type": "function",
                "function": {"name": "read_file", "arguments": "{}"},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_s0n0c0", "content": "def add(a, b): return a - b"},
]


def exchange(base_url: str) -> list[tuple[int, str, bytes]]:
    """Three calls with the openai SDK: plain, streamed, the models list; (status,
    content type, body bytes) of each."""
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="k", max_retries=0)
    plain = client.chat.completions.with_raw_response.create(
        model="gpt-4.1-mini", messages=FIRST, tools=TOOLS
    )
    seen = [(plain.status_code, plain.headers["content-type"], plain.http_response.content)]
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4.1-mini",
        messages=SECOND,
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    ) as streamed:
        seen.append((streamed.status_code, streamed.headers["content-type"], streamed.read()))
    models = client.models.with_raw_response.list()
    seen.append((models.status_code, models.headers["content-type"], models.http_response.content))
    return seen


@pytest.fixture(scope="module")
def recording(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, list[tuple[int, str, bytes]]]]:
    """A cassette vcrpy recorded from the script server, and what the SDK received then."""
    folder = tmp_path_factory.mktemp("cassette")
    script = folder / "script.json"
    script.write_text(json.dumps(SCRIPT))
    cassette = folder / "recorded.yaml"
    with serving_replay(script) as url, vcr.use_cassette(str(cassette), record_mode="all"):
        received = exchange(url)
    yield cassette, received


def test_vcrpy_recorded_a_cassette_cassette_mode_reads(recording: tuple[Path, list[Any]]) -> None:
    path, _ = recording
    cassette = load_transcript(path)
    assert isinstance(cassette, Cassette)
    assert [(i.method, i.path) for i in cassette.interactions] == [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
    ]
    assert cassette.models == ("gpt-4.1-mini",)


def test_cassette_mode_replays_the_recorded_bytes(recording: tuple[Path, list[Any]]) -> None:
    path, received = recording
    with serving_replay(path) as url:
        replayed = exchange(url)
    assert replayed == received
    assert received[1][1].startswith("text/event-stream") and received[1][2].endswith(
        b"data: [DONE]\n\n"
    )


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)


def test_equal_json_wins_over_order_and_key_order_is_ignored(
    recording: tuple[Path, list[Any]],
) -> None:
    path, received = recording
    with serving_replay(path, strict=True) as url:
        # The second recorded request first, its keys in another order: matched as JSON.
        body = {
            "tools": TOOLS,
            "stream_options": {"include_usage": True},
            "stream": True,
            "messages": SECOND,
            "model": "gpt-4.1-mini",
        }
        assert post(url, body).content == received[1][2]
        assert (
            post(url, {"model": "gpt-4.1-mini", "messages": FIRST, "tools": TOOLS}).content
            == received[0][2]
        )
        # Both used: nothing is left for a third.
        spent = post(url, {"model": "gpt-4.1-mini", "messages": FIRST, "tools": TOOLS})
    assert spent.status_code == 409
    message = spent.json()["error"]["message"]
    assert "POST /v1/chat/completions" in message and "gpt-4.1-mini" in message


def test_strict_mode_refuses_a_body_that_was_not_recorded(
    recording: tuple[Path, list[Any]],
) -> None:
    path, received = recording
    different = {
        "model": "gpt-4.1-mini",
        "messages": [{"role": "user", "content": "something else"}],
        "tools": TOOLS,
    }
    with serving_replay(path, strict=True) as url:
        refused = post(url, different)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "replay_mismatch"
    with serving_replay(path, strict=False) as url:
        # Lenient: the next unused interaction with this method and path, in recorded order.
        assert post(url, different).content == received[0][2]
        assert post(url, different).content == received[1][2]
        assert post(url, different).status_code == 409


def test_anthropic_requests_get_anthropic_shaped_409s(recording: tuple[Path, list[Any]]) -> None:
    path, _ = recording
    with serving_replay(path) as url:
        response = httpx.post(
            f"{url}/v1/messages?beta=true", json={"model": "claude", "messages": []}, timeout=10
        )
    assert response.status_code == 409
    assert response.json()["type"] == "error"
    assert "POST /v1/messages" in response.json()["error"]["message"]
