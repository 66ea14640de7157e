"""What engines spent, summed from the gateway's `engine-spend` audit events.

The audit log only grows and its appends commit in `seq` order (one lock serialises them,
audit/sql.py), so the totals are kept in memory and each scrape reads only the events past
the last `seq` read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from codefactory.audit import events
from codefactory.audit.events import decode
from codefactory.store.models import AuditEventRow

SPEND_EVENT = events.EngineSpend.NAME


@dataclass
class EngineTotals:
    """One engine's spend over every run: USD, tokens and model requests."""

    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0


@dataclass
class EngineSpend:
    """Totals per engine name, advanced by `advance(connection)`."""

    engines: dict[str, EngineTotals] = field(default_factory=dict)
    _last_seq: int = -1

    def advance(self, connection: Connection) -> None:
        """Add the `engine-spend` events appended since the last call. The cursor moves to
        the log's last index every time (appends commit in index order), so a scrape reads
        only the events appended since the previous one, even when none was a spend."""
        head = connection.execute(select(func.max(AuditEventRow.seq))).scalar()
        if head is None or head <= self._last_seq:
            return
        rows = connection.execute(
            select(AuditEventRow.data)
            .where(
                AuditEventRow.seq > self._last_seq,
                AuditEventRow.seq <= head,
                AuditEventRow.name == SPEND_EVENT,
            )
            .order_by(AuditEventRow.seq)
        ).all()
        for (data,) in rows:
            fields = json.loads(data)
            spent = decode(SPEND_EVENT, fields if isinstance(fields, dict) else {})
            if isinstance(spent, events.EngineSpend):
                self._add(spent)
        self._last_seq = head

    def _add(self, spent: events.EngineSpend) -> None:
        totals = self.engines.setdefault(str(spent.engine), EngineTotals())
        totals.cost_usd += _number(spent.cost_usd)
        totals.input_tokens += int(_number(spent.input_tokens))
        totals.output_tokens += int(_number(spent.output_tokens))
        totals.requests += int(_number(spent.requests))


def _number(value: object) -> float:
    """A spend field as a number; a missing or malformed one counts 0 (the audit log keeps
    the event as written)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
