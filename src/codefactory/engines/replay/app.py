"""The replay upstream as an ASGI application (Starlette): a stand-in model provider."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Protocol as TypingProtocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from codefactory.engines.replay.cassette import Cassette
from codefactory.engines.replay.cassette_endpoint import CassetteEndpoint, protocol_of, replayed
from codefactory.engines.replay.script_endpoint import ScriptEndpoint
from codefactory.engines.replay.transcript import load_transcript
from codefactory.engines.replay.wire import Protocol

_MODEL_ROUTES = [
    ("/v1/chat/completions", Protocol.CHAT),
    ("/openai/deployments/{deployment}/chat/completions", Protocol.CHAT),
    ("/v1/responses", Protocol.RESPONSES),
    ("/v1/messages", Protocol.MESSAGES),
]


class _Endpoint(TypingProtocol):
    async def answer(self, request: Request, protocol: Protocol) -> Response: ...


def build_replay_app(transcript_path: Path, *, strict: bool = False) -> Starlette:
    """The replay upstream serving `transcript_path` (a script or a cassette, see
    `load_transcript`, which raises TranscriptError for a bad file before anything serves).

    Routes: `POST /v1/chat/completions` and `POST /openai/deployments/{name}/chat/completions`
    (OpenAI Chat Completions, Azure), `POST /v1/responses` (OpenAI Responses),
    `POST /v1/messages` (Anthropic Messages; query such as `?beta=true` ignored),
    `GET /v1/models` (OpenAI's list shape; Anthropic's when `anthropic-version` is sent).
    A cassette also replays any other recorded method and path. `strict`: scripts check
    `expect_result`, cassettes match request bodies exactly; a mismatch is HTTP 409.
    """
    transcript = load_transcript(transcript_path)
    endpoint: _Endpoint
    if isinstance(transcript, Cassette):
        endpoint = CassetteEndpoint(transcript, strict=strict)
        models = transcript.models or ("replay",)
    else:
        endpoint = ScriptEndpoint(transcript, strict=strict)
        models = (transcript.model,)

    async def model_call(protocol: Protocol, request: Request) -> Response:
        return await endpoint.answer(request, protocol)

    async def list_models(request: Request) -> Response:
        if isinstance(endpoint, CassetteEndpoint):
            recorded = endpoint.take("GET", request.url.path, b"")
            if recorded is not None:
                return replayed(recorded)
        return JSONResponse(models_list(models, anthropic="anthropic-version" in request.headers))

    routes = [
        Route(path, partial(model_call, protocol), methods=["POST"])
        for path, protocol in _MODEL_ROUTES
    ]
    routes.append(Route("/v1/models", list_models, methods=["GET"]))
    if isinstance(endpoint, CassetteEndpoint):
        cassette_endpoint = endpoint

        async def any_recorded(request: Request) -> Response:
            return await cassette_endpoint.answer(request, protocol_of(request.url.path))

        routes.append(Route("/{path:path}", any_recorded, methods=["GET", "POST", "PUT", "DELETE"]))
    return Starlette(routes=routes)


def models_list(models: tuple[str, ...], *, anthropic: bool) -> dict[str, object]:
    """`GET /v1/models` in OpenAI's shape (`{"object": "list", "data": [...]}`) or, for a
    caller sending `anthropic-version`, Anthropic's paged shape."""
    if not anthropic:
        return {
            "object": "list",
            "data": [
                {"id": model, "object": "model", "created": 0, "owned_by": "replay"}
                for model in models
            ],
        }
    return {
        "data": [
            {
                "type": "model",
                "id": model,
                "display_name": model,
                "created_at": "2025-01-01T00:00:00Z",
                "lifecycle": "active",
            }
            for model in models
        ],
        "has_more": False,
        "first_id": models[0],
        "last_id": models[-1],
    }
