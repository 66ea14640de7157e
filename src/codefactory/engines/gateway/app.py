"""The gateway's ASGI application: every method and path goes to the relay, which answers
in the caller's provider's shape; the upstream client lives as long as the app, and so does
the task that writes the aggregate records of refused calls."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from codefactory.engines.gateway.relay import Relay
from codefactory.engines.gateway.streaming import TeeResponse

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def build_gateway_app(relay: Relay) -> Starlette:
    """A Starlette app that hands each request to `relay` (served by uvicorn with TLS)."""

    async def call(request: Request) -> Response | TeeResponse:
        return await relay.handle(request)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await relay.open()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(relay.flush_periodically)
                try:
                    yield
                finally:
                    group.cancel_scope.cancel()
        finally:
            await relay.close()

    route = Route("/{path:path}", call, methods=_METHODS)
    return Starlette(routes=[route], lifespan=lifespan)
