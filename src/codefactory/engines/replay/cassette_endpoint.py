"""The cassette-mode endpoint: each request gets the bytes of one recorded interaction.

Matching: among the interactions not yet used, with the request's method and a recorded
path equal to the request's path, ending with it (a provider base URL may carry a path
prefix) or naming the same model endpoint (`.../chat/completions`, `.../responses`,
`.../messages`, `.../models`: an Azure deployment path), the first whose request body is
equal as JSON (key order and whitespace ignored; byte equality for bodies that are not
JSON); if none and not strict, the first of them in recorded order. None left: 409 in the
provider's error shape, naming the request.
"""

from __future__ import annotations

import threading

from starlette.requests import Request
from starlette.responses import Response

from codefactory.engines.replay.cassette import Cassette, Interaction, decode_json
from codefactory.engines.replay.provider_errors import error_response
from codefactory.engines.replay.turn import ErrorAnswer, ErrorKind
from codefactory.engines.replay.wire import Protocol


class CassetteEndpoint:
    """Replays one cassette; each interaction answers at most one request."""

    def __init__(self, cassette: Cassette, *, strict: bool) -> None:
        self.cassette = cassette
        self.strict = strict
        self._lock = threading.Lock()
        self._used: set[int] = set()

    def take(self, method: str, path: str, body: bytes) -> Interaction | None:
        """The interaction answering this request (marked used), or None when none is left."""
        incoming = decode_json(body)
        with self._lock:
            candidates = [
                i
                for i in self.cassette.interactions
                if i.index not in self._used and i.method == method and _same_path(i.path, path)
            ]
            chosen = next((i for i in candidates if _same_body(i, body, incoming)), None)
            if chosen is None and not self.strict and candidates:
                chosen = candidates[0]
            if chosen is not None:
                self._used.add(chosen.index)
            return chosen

    async def answer(self, request: Request, protocol: Protocol) -> Response:
        """The recorded answer to `request`, or a 409 in `protocol`'s error shape."""
        body = await request.body()
        interaction = self.take(request.method, request.url.path, body)
        if interaction is None:
            return error_response(protocol, self._nothing_left(request, body))
        return replayed(interaction)

    def _nothing_left(self, request: Request, body: bytes) -> ErrorAnswer:
        incoming = decode_json(body)
        model = incoming.get("model") if isinstance(incoming, dict) else None
        mode = "equal" if self.strict else "unused"
        return ErrorAnswer(
            kind=ErrorKind.MISMATCH,
            message=f"replay mismatch: no {mode} recorded interaction left in "
            f"{self.cassette.path.name} for {request.method} {request.url.path}"
            + (f" (model {model})" if model else ""),
        )


def replayed(interaction: Interaction) -> Response:
    """The recorded response: status, headers (less framing) and body bytes as recorded."""
    response = Response(interaction.content, status_code=interaction.status)
    response.raw_headers += [(k.encode(), v.encode()) for k, v in interaction.headers]
    return response


def protocol_of(path: str) -> Protocol:
    """The protocol whose error shape suits a request to `path`."""
    if path.endswith("/messages") or "/messages/" in path:
        return Protocol.MESSAGES
    return Protocol.RESPONSES if "/responses" in path else Protocol.CHAT


_ENDPOINTS = ("/chat/completions", "/responses", "/messages", "/models")


def _same_path(recorded: str, requested: str) -> bool:
    if recorded == requested or recorded.endswith(requested):
        return True
    # An Azure deployment path (`/openai/deployments/NAME/chat/completions`) is the same
    # model endpoint as the `/v1/chat/completions` the gateway forwards.
    return any(recorded.endswith(e) and requested.endswith(e) for e in _ENDPOINTS)


def _same_body(interaction: Interaction, body: bytes, incoming: object) -> bool:
    recorded = interaction.request_json()
    if recorded is not None and incoming is not None:
        return bool(recorded == incoming)
    return interaction.body == body
