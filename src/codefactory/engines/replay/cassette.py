"""Cassettes: recorded HTTP exchanges in vcrpy's YAML format, replayed byte for byte.

Shape (vcrpy's `version: 1` cassette)::

    interactions:
    - request: {method: POST, uri: https://host/v1/chat/completions, body: '{...}', headers: {}}
      response:
        status: {code: 200, message: OK}
        headers: {content-type: [application/json]}
        body: {string: '{...}'}
    version: 1
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from codefactory.engines.replay.errors import TranscriptError

# Framing headers describe the recorded connection, not the body: the server sets its own.
_FRAMING = {"content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass(frozen=True, kw_only=True)
class Interaction:
    """One recorded exchange: what was asked and the bytes that answered it."""

    index: int
    method: str
    path: str
    """The request URI's path; scheme, host, port and query are not compared."""
    body: bytes
    status: int
    headers: tuple[tuple[str, str], ...]
    """Response headers as recorded, less framing (length, transfer encoding, connection)."""
    content: bytes

    def request_json(self) -> Any:
        """The recorded request body decoded as JSON, or None when it is not JSON."""
        return decode_json(self.body)


@dataclass(frozen=True, kw_only=True)
class Cassette:
    """A parsed cassette."""

    path: Path
    interactions: tuple[Interaction, ...]

    @property
    def models(self) -> tuple[str, ...]:
        """Model ids named by the recorded requests, in order of first use."""
        seen: dict[str, None] = {}
        for interaction in self.interactions:
            body = interaction.request_json()
            if isinstance(body, dict) and isinstance(body.get("model"), str):
                seen.setdefault(body["model"], None)
        return tuple(seen)


def decode_json(body: bytes) -> Any:
    """`body` as JSON, or None when it is empty or not JSON."""
    try:
        return json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return None


def parse_cassette(document: Any, path: Path) -> Cassette:
    """The cassette in a decoded YAML `document`; raises TranscriptError naming what is wrong."""
    if not isinstance(document, dict) or not isinstance(document.get("interactions"), list):
        raise TranscriptError(path, "a cassette is a YAML mapping with an `interactions` list")
    if document.get("version", 1) != 1:
        raise TranscriptError(path, f"unsupported cassette version {document.get('version')!r}")
    interactions = tuple(
        _interaction(raw, index, path) for index, raw in enumerate(document["interactions"])
    )
    return Cassette(path=path, interactions=interactions)


def _interaction(raw: Any, index: int, path: Path) -> Interaction:
    def fail(detail: str) -> TranscriptError:
        return TranscriptError(path, detail, step=index, item="interaction")

    if not isinstance(raw, dict):
        raise fail("an interaction is a mapping with `request` and `response`")
    request, response = raw.get("request"), raw.get("response")
    if not isinstance(request, dict) or not isinstance(response, dict):
        raise fail("an interaction needs a `request` and a `response` mapping")
    method, uri = request.get("method"), request.get("uri")
    if not isinstance(method, str) or not isinstance(uri, str) or not uri:
        raise fail("`request` needs a `method` and a `uri` string")
    status = response.get("status")
    code = status.get("code") if isinstance(status, dict) else None
    if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
        raise fail("`response.status.code` must be an HTTP status code")
    body = response.get("body")
    if not isinstance(body, dict) or "string" not in body:
        raise fail("`response.body.string` is missing")
    return Interaction(
        index=index,
        method=method.upper(),
        path=urlsplit(uri).path or "/",
        body=_bytes(request.get("body"), "request.body", fail),
        status=code,
        headers=_headers(response.get("headers"), fail),
        content=_bytes(body["string"], "response.body.string", fail),
    )


def _bytes(value: Any, label: str, fail: Callable[[str], TranscriptError]) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise fail(f"`{label}` must be a string, bytes or null")


def _headers(raw: Any, fail: Callable[[str], TranscriptError]) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise fail("`response.headers` must be a mapping of name to values")
    pairs: list[tuple[str, str]] = []
    for name, values in raw.items():
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, str | int):
                raise fail(f"header {name!r} has a value that is not a string")
            if str(name).lower() not in _FRAMING:
                pairs.append((str(name).lower(), str(value)))
    return tuple(pairs)
