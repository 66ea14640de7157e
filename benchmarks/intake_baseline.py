"""The intake benchmark's baseline: the least an ASGI endpoint can do for a delivery.

It checks the same Standard Webhooks signature (HMAC-SHA256 over `id.timestamp.body`) and
inserts the delivery into a SQLite database with the factory's own settings (WAL,
`synchronous=FULL`: every commit is durable), one commit per delivery, then answers 202.
No parsing, no policy, no audit log, no framework: `bench_intake.py` serves it with uvicorn
and prints the factory's intake beside it.

    uvicorn --app-dir benchmarks intake_baseline:app     # BASELINE_DB, BASELINE_SECRET
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

KEY = base64.b64decode(os.environ["BASELINE_SECRET"].removeprefix("whsec_"))
DATABASE = sqlite3.connect(os.environ["BASELINE_DB"], isolation_level=None)
DATABASE.execute("PRAGMA journal_mode=WAL")
DATABASE.execute("PRAGMA synchronous=FULL")
DATABASE.execute(
    "CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY, delivery_id TEXT UNIQUE,"
    " received_at TEXT DEFAULT CURRENT_TIMESTAMP, body BLOB)"
)

Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(
    scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Send
) -> None:
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    headers = dict(scope["headers"])
    delivery_id = headers.get(b"webhook-id", b"")
    stamp = headers.get(b"webhook-timestamp", b"")
    expected = hmac.new(KEY, delivery_id + b"." + stamp + b"." + body, hashlib.sha256).digest()
    signatures = headers.get(b"webhook-signature", b"").split()
    if not any(
        hmac.compare_digest(base64.b64decode(given.partition(b",")[2]), expected)
        for given in signatures
    ):
        await _answer(send, 401, {"detail": "bad signature"})
        return
    DATABASE.execute("BEGIN")
    DATABASE.execute(
        "INSERT INTO deliveries (delivery_id, body) VALUES (?, ?)", (delivery_id.decode(), body)
    )
    DATABASE.execute("COMMIT")
    await _answer(send, 202, {"delivery_id": delivery_id.decode(), "status": "received"})


async def _answer(send: Send, status: int, document: dict[str, str]) -> None:
    body = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
