"""The store-only webhook path: a delivery that only needs storing skips the framework.

With `triggers.decide_at_intake` off, most deliveries need nothing but their checks
(`WebhookIntake.admit`: size, secret, signature, body, replay window) and the group commit
that stores them. This ASGI middleware sits inside the trusted-host check and answers those
itself: it reads the declared body, asks `admit`, waits for the commit on the event loop
(no worker thread), and answers `202` with the same receipt the route gives
(`webhooks.DeliveryReceipt`). Everything else goes on to the FastAPI route unchanged, with
the body it read replayed: a refusal (counted there), a body over 64 KiB or chunked, a
repeated header the source reads, a client past its rejection budget, a repeat, a
reconciliation, the ServiceNow notices, and every source when deliveries are decided at
intake. Its JSON is byte for byte the route's (`JSONResponse`'s encoding). The route stays
the one the OpenAPI document describes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codefactory.web.webhooks import DeliveryReceipt, repeated_header

if TYPE_CHECKING:
    from codefactory.runs.intake import WebhookIntake

PREFIX = "/webhooks/"
MAX_BODY = 64 * 1024
"""Larger bodies go to the route, whose worker thread parses them: checking one on the event
loop would hold up every other request meanwhile."""


class StoreOnlyIntake:
    """ASGI middleware: `POST /webhooks/<source>` deliveries only to be stored, answered
    here (module docstring); any other request passes to `app` untouched."""

    def __init__(self, app: ASGIApp, *, intake: WebhookIntake) -> None:
        self.app = app
        self.intake = intake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        source = self._source(scope)
        length = _declared_length(scope) if source else None
        if source is None or length is None or length > MAX_BODY or not self._fresh(scope, source):
            await self.app(scope, receive, send)
            return
        body, gone = await _read(receive, length)
        if gone:
            return  # nobody to answer
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:  # the first copy, as the route reads them
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        new = self.intake.admit(source, headers, body) if len(body) == length else None
        if new is None:
            await self.app(scope, _replay(body, receive), send)
            return
        written = await self.intake.writer.wait(new)
        if written.first:  # stored, nothing to decide: answering does not block
            receipt = self.intake.answer(new, written)
        else:
            receipt = await run_in_threadpool(self.intake.answer, new, written)
        document = DeliveryReceipt.of(receipt).model_dump()
        await _answer(send, 200 if source == "slack" else 202, document)

    def _fresh(self, scope: Scope, source: str) -> bool:
        """Whether this path may take the request at all: no header its source reads is
        repeated (the route refuses that), the client is not past its budget of rejected
        deliveries (the route answers 429)."""
        if repeated_header(scope["headers"], self.intake.sources[source]) is not None:
            return False
        client = scope.get("client")
        address = client[0] if client else ""
        return not self.intake.budget.exhausted(source, address)

    def _source(self, scope: Scope) -> str | None:
        """The webhook source the request posts to, when this path may take it."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path: str = scope["path"]
        if not path.startswith(PREFIX) or self.intake.settings.decide_at_intake:
            return None
        source = path.removeprefix(PREFIX)
        return source if source in self.intake.sources else None


def _declared_length(scope: Scope) -> int | None:
    """The request's `Content-Length`, when it declares one (and no chunked body)."""
    found: int | None = None
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            if not value.isdigit() or len(value) > 18 or found is not None:
                return None
            found = int(value)
    return found


async def _read(receive: Receive, length: int) -> tuple[bytes, bool]:
    """The body (no more than `length` bytes are kept) and whether the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= length:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then the real one's messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _answer(send: Send, status: int, document: dict[str, object]) -> None:
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
