"""Name → class for every typed audit event, and the decoder from a stored record.

`typed(record)` gives the event a stored record holds: an instance of the class registered
for its name when its data fits that class exactly (same keys, and the class writes the same
data back), else an `UnknownEvent` with the name and data as they are (an old log, another
version's event, a kind without a class). Decoding never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from codefactory.audit.events import engines, review, runs
from codefactory.domain import AuditEvent, UnknownEvent


class Recorded(Protocol):
    """What a stored record offers the decoder (`audit.port.AuditRecord` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def data(self) -> Mapping[str, Any]: ...


def _kinds() -> dict[str, type[AuditEvent]]:
    kinds: dict[str, type[AuditEvent]] = {}
    for module in (runs, review, engines):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, AuditEvent)
                and value.__module__ == module.__name__
            ):
                if value.NAME in kinds:
                    raise RuntimeError(f"two audit event classes are named {value.NAME}")
                kinds[value.NAME] = value
    return kinds


KINDS: Mapping[str, type[AuditEvent]] = _kinds()
"""Every typed event class by its `NAME`."""


def typed(record: Recorded) -> AuditEvent:
    """The typed event `record` holds, or an `UnknownEvent` (see the module docstring)."""
    data = dict(record.data)
    kind = KINDS.get(record.name)
    if kind is not None:
        try:
            event = kind(actor=record.actor, run_id=record.run_id, at=record.at, **data)
        except TypeError:  # a missing or unexpected field: not this class's shape
            pass
        else:
            if event.data == data:
                return event
    return UnknownEvent(
        kind=record.name, actor=record.actor, run_id=record.run_id, at=record.at, payload=data
    )
