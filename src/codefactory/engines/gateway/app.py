"""The gateway's ASGI application: every method and path goes to the relay, which answers
in the caller's provider's shape; the upstream client lives as long as the app, and so does
the task that writes the aggregate records of refused calls.

Side apps share the listener (its TLS, its host name, the sandbox's one egress entry): a
request whose path starts with one of a side app's prefixes goes to it instead (the context
engine's MCP endpoint at `/mcp`), and its lifespan runs inside the gateway's."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from codefactory.engines.gateway.relay import Relay
from codefactory.engines.gateway.streaming import TeeResponse

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@dataclass(frozen=True, kw_only=True)
class SideApp:
    """An app served beside the relay for the paths under `prefixes` (`/mcp`)."""

    prefixes: tuple[str, ...]
    """Paths it serves, and everything below them (the request path is passed unchanged)."""
    app: Starlette


def build_gateway_app(relay: Relay, side_apps: Sequence[SideApp] = ()) -> Starlette:
    """A Starlette app that hands each request to `relay` (served by uvicorn with TLS), or
    to the side app whose prefix its path starts with."""

    async def call(request: Request) -> Response | TeeResponse:
        return await relay.handle(request)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await relay.open()
        try:
            async with contextlib.AsyncExitStack() as stack:
                for side in side_apps:  # entered first, left last: their task groups nest
                    await stack.enter_async_context(side.app.router.lifespan_context(side.app))
                async with anyio.create_task_group() as group:
                    group.start_soon(relay.flush_periodically)
                    try:
                        yield
                    finally:
                        group.cancel_scope.cancel()
        finally:
            await relay.close()

    sides = [
        Route(path, side.app, methods=None)
        for side in side_apps
        for prefix in side.prefixes
        for path in (prefix, prefix + "/{rest:path}")
    ]
    relay_route = Route("/{path:path}", call, methods=_METHODS)
    return Starlette(routes=[*sides, relay_route], lifespan=lifespan)
