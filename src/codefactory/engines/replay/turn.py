"""The answer the replay upstream has chosen, before it is put into a wire protocol."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from codefactory.engines.replay.script import Usage


@dataclass(frozen=True, kw_only=True)
class Call:
    """A tool call to render; `arguments` is JSON text (not JSON at all for the
    malformed-tool-JSON fault)."""

    id: str
    """Protocol-neutral; renderers prefix it (`call_`, `toolu_`)."""
    name: str
    arguments: str


@dataclass(frozen=True, kw_only=True)
class Turn:
    """A model turn: text that ends the turn, or tool calls."""

    text: str | None = None
    calls: tuple[Call, ...] = ()
    usage: Usage | None = None
    """None: the answer carries no usage block at all."""
    truncated: bool = False
    """Cut before its end: a stream without its end event, a body cut in half."""
    step: int | None = None
    """The script step served; None for a side request's or a finished script's answer."""


class ErrorKind(StrEnum):
    """Provider errors the replay upstream answers with."""

    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    OVERLOADED = "overloaded"
    CONTEXT_LENGTH = "context_length"
    MISMATCH = "mismatch"
    INVALID_REQUEST = "invalid_request"


@dataclass(frozen=True, kw_only=True)
class ErrorAnswer:
    """An HTTP error answer in the caller's provider shape."""

    kind: ErrorKind
    message: str
    retry_after: float | None = None
    """Seconds, sent as `retry-after`."""
    step: int | None = None


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """What surrounds a rendered turn: its id, the model named, the time, the options."""

    id: str
    """Unique per answer, without a protocol prefix."""
    model: str
    created: int
    """Unix seconds."""
    include_usage: bool = True
