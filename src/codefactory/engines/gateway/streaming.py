"""An ASGI response that passes an upstream SSE stream through as it arrives and keeps a
copy of every byte, then reports how the stream ended."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import anyio
import httpx
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)

StreamDone = Callable[[bytes, str], Awaitable[None]]
"""Called once with every byte the upstream sent and a failure text ("" when the stream
ran to its end), shielded from cancellation."""


class TeeResponse:
    """Streams `upstream` to the caller chunk by chunk; a broken upstream or a departed
    caller ends the caller's body early (what came is what they get) and is reported."""

    def __init__(
        self,
        upstream: httpx.Response,
        headers: Sequence[tuple[str, str]],
        on_done: StreamDone,
    ) -> None:
        self.upstream = upstream
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self.on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        failure = ""
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.upstream.status_code,
                    "headers": self.headers,
                }
            )
            failure = await self._relay(chunks, send)
        except BaseException as error:  # the caller left, or the server is stopping
            failure = f"caller disconnected: {type(error).__name__}"
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()
                await self.on_done(b"".join(chunks), failure)

    async def _relay(self, chunks: list[bytes], send: Send) -> str:
        failure = ""
        try:
            async for chunk in self.upstream.aiter_bytes():
                chunks.append(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as error:
            failure = f"upstream stream broke: {type(error).__name__}: {error}"
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return failure
