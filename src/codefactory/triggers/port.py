"""The trigger port: a source turns a raw delivery into a `TriggerEvent`."""

from __future__ import annotations

from typing import Protocol

from codefactory.domain import TriggerEvent


class TriggerSource(Protocol):
    """One system work can come from (Jira, GitHub, Sentry, the CLI, a schedule)."""

    name: str

    def parse(self, payload: bytes, *, repository: str) -> TriggerEvent:
        """Parse an untrusted delivery; raises `TicketInvalid` with the reason."""
        ...
