"""The script-mode model endpoint: read the request, choose the answer, render it."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from codefactory.engines.replay.provider_errors import error_response
from codefactory.engines.replay.render_chat import chat_body, chat_stream
from codefactory.engines.replay.render_messages import messages_body, messages_stream
from codefactory.engines.replay.render_responses import responses_body, responses_stream
from codefactory.engines.replay.script import Script
from codefactory.engines.replay.selection import ScriptPlayer
from codefactory.engines.replay.turn import Envelope, ErrorAnswer, ErrorKind, Turn
from codefactory.engines.replay.wire import InvalidRequest, Protocol, parse_request

_BODIES: dict[Protocol, Callable[[Turn, Envelope], dict[str, object]]] = {
    Protocol.CHAT: chat_body,
    Protocol.RESPONSES: responses_body,
    Protocol.MESSAGES: messages_body,
}
_STREAMS: dict[Protocol, Callable[[Turn, Envelope], list[bytes]]] = {
    Protocol.CHAT: chat_stream,
    Protocol.RESPONSES: responses_stream,
    Protocol.MESSAGES: messages_stream,
}


class ScriptEndpoint:
    """Answers model requests of any protocol from one script (state: see ScriptPlayer)."""

    def __init__(self, script: Script, *, strict: bool) -> None:
        self.script = script
        self.player = ScriptPlayer(script, strict=strict)
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()

    async def answer(self, request: Request, protocol: Protocol) -> Response:
        """The HTTP response to one model request in `protocol`."""
        with self._ids_lock:
            answer_id = f"replay{next(self._ids):06d}"
        headers = {"x-request-id": f"req_{answer_id}", "request-id": f"req_{answer_id}"}
        try:
            wire = parse_request(protocol, await request.body())
        except InvalidRequest as error:
            invalid = ErrorAnswer(kind=ErrorKind.INVALID_REQUEST, message=str(error))
            return _with(error_response(protocol, invalid), headers)
        chosen = self.player.answer(wire)
        if isinstance(chosen, ErrorAnswer):
            return _with(error_response(protocol, chosen), headers)
        envelope = Envelope(
            id=answer_id,
            model=wire.model or self.script.model,
            created=int(time.time()),
            include_usage=wire.include_usage or protocol is not Protocol.CHAT,
        )
        if wire.stream:
            frames = _STREAMS[protocol](chosen, envelope)
            if chosen.truncated:
                # Cut before the end event: the stream ends cleanly but incomplete.
                frames = frames[: max(1, len(frames) // 2)]
            return StreamingResponse(
                _iterate(frames), media_type="text/event-stream", headers=headers
            )
        body = json.dumps(_BODIES[protocol](chosen, envelope)).encode()
        if chosen.truncated:
            body = body[: len(body) // 2]
        return Response(body, media_type="application/json", headers=headers)


async def _iterate(frames: list[bytes]) -> AsyncIterator[bytes]:
    for piece in frames:
        yield piece


def _with(response: Response, headers: dict[str, str]) -> Response:
    response.headers.update(headers)
    return response
