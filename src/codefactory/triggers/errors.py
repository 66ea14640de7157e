"""Trigger errors.

TriggerError
 └── TicketInvalid      the payload is not a ticket we can read (bad JSON, missing fields)
"""

from __future__ import annotations


class TriggerError(Exception):
    """Base class for trigger intake failures."""


class TicketInvalid(TriggerError):
    """A ticket or delivery that cannot be parsed; names the source and what is wrong."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"invalid {source} ticket: {reason}")
        self.source = source
        self.reason = reason
