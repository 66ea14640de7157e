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
        *,
        max_bytes: int | None = None,
    ) -> None:
        self.upstream = upstream
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self.on_done = on_done
        self.max_bytes = max_bytes
        """The most of the stream passed on (and kept); the rest is cut as a failure."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        failure = ["caller disconnected"]
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.upstream.status_code,
                    "headers": self.headers,
                }
            )
            async with anyio.create_task_group() as group:
                # Sending to a departed caller may succeed silently: watch for it instead.
                group.start_soon(self._watch, receive, group.cancel_scope)
                failure[0] = await self._relay(chunks, send)
                group.cancel_scope.cancel()
        except BaseException as error:  # the server is stopping, or the caller's socket broke
            failure[0] = f"caller disconnected: {type(error).__name__}"
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()
                await self.on_done(b"".join(chunks), failure[0])

    @staticmethod
    async def _watch(receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async def _relay(self, chunks: list[bytes], send: Send) -> str:
        failure, size = "", 0
        try:
            async for chunk in self.upstream.aiter_bytes():
                size += len(chunk)
                if self.max_bytes is not None and size > self.max_bytes:
                    failure = f"upstream stream longer than {self.max_bytes} bytes: cut"
                    break
                chunks.append(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as error:
            failure = f"upstream stream broke: {type(error).__name__}: {error}"
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return failure
