"""A provider stand-in for the gateway tests (no tests here): an HTTPS server on loopback,
with its own CA, answering OpenAI Chat Completions, OpenAI Responses and Anthropic Messages
in their real wire shapes, streamed and not, and recording what reached it. Faults are
queued per request: a status with headers, a stream cut before its end event, a response
without usage, a slow answer."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from codefactory.engines.gateway import ModelCall, ModelGateway, ensure_certificates
from codefactory.engines.settings import GatewaySettings

UPSTREAM_KEY = "sk-upstream-SECRET-never-leaves-0123456789"
INPUT_TOKENS, OUTPUT_TOKENS = 11, 7


@dataclass
class Fault:
    """What the stand-in does instead of answering normally, once."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncate: bool = False
    no_usage: bool = False
    delay_s: float = 0.0
    stall_s: float = 0.0
    """A pause in a stream after its first event."""


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


def sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for event, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {event}\n" if event else "") + f"data: {payload}\n\n")
    return "".join(out).encode()


def chat(model: str, stream: bool, usage: bool, include_usage: bool) -> tuple[bytes, bool]:
    counts = {
        "prompt_tokens": INPUT_TOKENS,
        "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    }
    base = {"id": "chatcmpl-1", "created": 1700000000, "model": model}
    if not stream:
        body = {
            **base,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hello"},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
        }
        if usage:
            body["usage"] = counts
        return json.dumps(body).encode(), False
    chunk = {**base, "object": "chat.completion.chunk"}
    events: list[tuple[str | None, Any]] = [
        (
            None,
            {
                **chunk,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            },
        ),
        (
            None,
            {
                **chunk,
                "choices": [{"index": 0, "delta": {"content": "hel"}, "finish_reason": None}],
            },
        ),
        (
            None,
            {**chunk, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]},
        ),
        (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ]
    if usage and include_usage:
        events.append((None, {**chunk, "choices": [], "usage": counts}))
    events.append((None, "[DONE]"))
    return sse(events), True


def responses(model: str, stream: bool, usage: bool) -> tuple[bytes, bool]:
    item = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "hello", "annotations": []}],
    }
    counts = {
        "input_tokens": INPUT_TOKENS,
        "output_tokens": OUTPUT_TOKENS,
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }
    response = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1700000000,
        "status": "completed",
        "model": model,
        "output": [item],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": counts if usage else None,
    }
    if not stream:
        return json.dumps(response).encode(), False
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[tuple[str | None, Any]] = [
        (
            "response.created",
            {"type": "response.created", "sequence_number": 0, "response": started},
        ),
        (
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "sequence_number": 1,
                "output_index": 0,
                "item": {**item, "status": "in_progress", "content": []},
            },
        ),
        (
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "sequence_number": 2,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": "hello",
                "logprobs": [],
            },
        ),
        (
            "response.output_item.done",
            {
                "type": "response.output_item.done",
                "sequence_number": 3,
                "output_index": 0,
                "item": item,
            },
        ),
        (
            "response.completed",
            {"type": "response.completed", "sequence_number": 4, "response": response},
        ),
    ]
    return sse(events), True


def messages(model: str, stream: bool, usage: bool) -> tuple[bytes, bool]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
    }
    if not stream:
        if usage:
            message["usage"] = {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS}
        return json.dumps(message).encode(), False
    start = {**message, "content": [], "stop_reason": None}
    if usage:
        start["usage"] = {"input_tokens": INPUT_TOKENS, "output_tokens": 1}
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
    }
    if usage:
        delta["usage"] = {"output_tokens": OUTPUT_TOKENS}
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "hello"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", delta),
        ("message_stop", {"type": "message_stop"}),
    ]
    return sse(events), True


class StandIn:
    """The provider stand-in: `seen` is every request that reached it, `faults` the queue of
    what to do instead of answering normally."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.faults: deque[Fault] = deque()
        self.app = Starlette(routes=[Route("/{path:path}", self.answer, methods=["GET", "POST"])])

    def reset(self) -> None:
        self.seen.clear()
        self.faults.clear()

    async def answer(self, request: Request) -> Response:
        body = await request.body()
        self.seen.append(
            Seen(request.method, request.url.path, request.url.query, dict(request.headers), body)
        )
        fault = self.faults.popleft() if self.faults else Fault()
        if fault.delay_s:
            await anyio.sleep(fault.delay_s)
        if fault.status != 200:
            return Response(
                fault.body or b'{"error": {"message": "stand-in fault"}}',
                fault.status,
                headers=fault.headers,
                media_type="application/json",
            )
        path = request.url.path
        if path.endswith("/models"):
            return JSONResponse(
                {
                    "object": "list",
                    "data": [
                        {"id": "gpt-test", "object": "model", "created": 0, "owned_by": "test"}
                    ],
                }
            )
        document = json.loads(body)
        model, stream = document.get("model", "deployment"), bool(document.get("stream"))
        usage = not fault.no_usage
        if path.endswith("/chat/completions"):
            include = bool((document.get("stream_options") or {}).get("include_usage"))
            payload, streamed = chat(model, stream, usage, include)
        elif path.endswith("/responses"):
            payload, streamed = responses(model, stream, usage)
        elif path.endswith("/messages"):
            payload, streamed = messages(model, stream, usage)
        else:
            return JSONResponse({"error": {"message": f"no {path}"}}, 404)
        if not streamed:
            return Response(
                payload, media_type="application/json", headers={"x-request-id": "req_standin"}
            )
        if fault.truncate:  # cut before the last event: no end event arrives
            payload = payload[: payload.rstrip(b"\n").rfind(b"\n\n") + 2]
        return StreamingResponse(_chunks(payload, fault.stall_s), media_type="text/event-stream")


async def _chunks(payload: bytes, stall_s: float) -> Any:
    for index, event in enumerate(payload.split(b"\n\n")):
        if event:
            yield event + b"\n\n"
            await anyio.sleep(stall_s if index == 0 else 0)


@dataclass
class Serving:
    base: str
    ca_file: Path
    port: int


def serve(
    app: Any, *, cert: Path | None = None, key: Path | None = None
) -> tuple[Callable[[], None], int]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "stand-in did not start"
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return stop, port


@pytest.fixture(scope="module", name="standin")
def standin_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StandIn, Serving]]:
    """The stand-in over HTTPS with a CA of its own (not the factory's)."""
    certificates = ensure_certificates(tmp_path_factory.mktemp("standin-ca"), "localhost")
    stand_in = StandIn()
    stop, port = serve(stand_in.app, cert=certificates.cert_file, key=certificates.key_file)
    yield stand_in, Serving(f"https://127.0.0.1:{port}", certificates.ca_file, port)
    stop()


class Records(list[ModelCall]):
    """The gateway's `on_call` sink: every record, in order."""

    def __call__(self, call: ModelCall) -> None:
        self.append(call)

    def wait(self, count: int, timeout_s: float = 5.0) -> list[ModelCall]:
        """The records once there are `count` (streamed calls are recorded after the caller
        has its last byte)."""
        deadline = time.monotonic() + timeout_s
        while len(self) < count:
            assert time.monotonic() < deadline, f"{len(self)} records, expected {count}"
            time.sleep(0.01)
        return list(self)


@pytest.fixture(name="fresh")
def fresh_fixture(
    gateway_records: tuple[ModelGateway, Records], standin: tuple[StandIn, Serving]
) -> Iterator[tuple[ModelGateway, Records, StandIn]]:
    """The module's gateway (its own `gateway_records` fixture) and the stand-in, with the
    records and the stand-in's requests of earlier tests forgotten."""
    gateway, records = gateway_records
    records.clear()
    standin[0].reset()
    yield gateway, records, standin[0]


def make_gateway(
    tmp: Path, upstream: str, ca_file: Path | None, records: Records, **settings: Any
) -> ModelGateway:
    gateway = ModelGateway(
        GatewaySettings(
            upstream=upstream, upstream_key=UPSTREAM_KEY, upstream_ca=ca_file, **settings
        ),
        state_dir=tmp / "gateway",
        traffic_dir=tmp / "traffic",
        on_call=records,
    )
    gateway.start()
    return gateway
