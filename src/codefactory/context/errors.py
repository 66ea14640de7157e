"""What a connector read can go wrong with, each named so the audit log and the engine see
which (`ContextError.kind` is the stable name)."""

from __future__ import annotations


class ContextError(Exception):
    """A read that did not happen; `kind` is the stable name in audit events."""

    kind = "context-error"

    def __init__(self, connector: str, message: str) -> None:
        super().__init__(f"{connector}: {message}")
        self.connector = connector


class OutOfScope(ContextError):
    """The reference names a project, space, table or path outside the connector's scope."""

    kind = "out-of-scope"


class NotFound(ContextError):
    """The source has no such item (HTTP 404, no such file)."""

    kind = "not-found"


class SourceUnauthorized(ContextError):
    """The source refused the factory's credential (HTTP 401 or 403)."""

    kind = "unauthorized"


class SourceRateLimited(ContextError):
    """The source asked to slow down (HTTP 429); `retry_after_s` when it said how long."""

    kind = "rate-limited"

    def __init__(self, connector: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(connector, message)
        self.retry_after_s = retry_after_s


class SourceUnavailable(ContextError):
    """The source did not answer in time, refused the connection, or answered 5xx."""

    kind = "unavailable"


class MalformedResponse(ContextError):
    """The source answered with something that is not the documented shape (bad JSON, a
    missing field)."""

    kind = "malformed"


class ReadRefused(ContextError):
    """Policy or the engine's clearance refused the read (a class above the engine's)."""

    kind = "refused"


class ResponseTooLarge(ContextError):
    """The source's answer exceeded the connector's byte cap; nothing of it is used."""

    kind = "too-large"
