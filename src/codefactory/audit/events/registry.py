"""Name → class for every typed audit event, and the decoder from a stored record.

`typed(record)` gives the event a stored record holds: an instance of the class registered
for its name, else an `UnknownEvent` with the name and data as they are (another version's
event, a kind without a class). A record of a known kind written with fewer fields (an older
version) gets each missing one's default or the empty value of its type, as the readers did
before the events were typed (`data.get(key, "")`); a key the class does not know is left
out (a later version's field). Decoding never raises.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from codefactory.audit.events import (
    advisories,
    engines,
    identity,
    intake,
    operations,
    regulated,
    review,
    runs,
)
from codefactory.domain import ENVELOPE, AuditEvent, UnknownEvent


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
    for module in (runs, intake, review, regulated, engines, operations, identity, advisories):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, AuditEvent)
                and value.__module__ == module.__name__
                and value.NAME  # a base of several kinds has none
            ):
                if value.NAME in kinds:
                    raise RuntimeError(f"two audit event classes are named {value.NAME}")
                kinds[value.NAME] = value
    return kinds


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

KINDS: Mapping[str, type[AuditEvent]] = _kinds()
"""Every typed event class by its `NAME`."""


def typed(record: Recorded) -> AuditEvent:
    """The typed event `record` holds, or an `UnknownEvent` (see the module docstring)."""
    return decode(record.name, record.data, actor=record.actor, run_id=record.run_id, at=record.at)


def decode(
    name: str,
    data: Mapping[str, Any],
    *,
    actor: str = "",
    run_id: str = "",
    at: datetime = EPOCH,
) -> AuditEvent:
    """The typed event of kind `name` with `data` (as `typed`), for a reader that has the
    stored columns, not an `AuditRecord` (the metrics' and cost caps' SQL readers); `at`
    defaults to the epoch when the reader did not select it."""
    kind = KINDS.get(name)
    if kind is None:
        return UnknownEvent(kind=name, actor=actor, run_id=run_id, at=at, payload=dict(data))
    values = {
        field: data[field] if field in data else copy.copy(empty) for field, empty in _BLANKS[kind]
    }
    return kind(actor=actor, run_id=run_id, at=at, **values)


def _blanks(kind: type[AuditEvent]) -> tuple[tuple[str, Any], ...]:
    """Each data field of `kind` with what it is when a record lacks it: its default, else
    the empty value of its type (`""`, 0, False, [], {}; None for an optional one)."""
    hints = typing.get_type_hints(kind)
    blanks = []
    for spec in dataclasses.fields(kind):
        if spec.name in ENVELOPE:
            continue
        if spec.default is not dataclasses.MISSING:
            blanks.append((spec.name, spec.default))
        else:
            blanks.append((spec.name, _empty(hints[spec.name])))
    return tuple(blanks)


def _empty(hint: Any) -> Any:
    origin = typing.get_origin(hint) or hint
    if origin in (types.UnionType, typing.Union):
        return None
    return {str: "", int: 0, float: 0.0, bool: False, list: [], dict: {}}[origin]


_BLANKS = {kind: _blanks(kind) for kind in KINDS.values()}
