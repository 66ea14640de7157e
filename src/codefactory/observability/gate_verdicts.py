"""Verify gate verdicts per check, counted once each from `check_runs` (a row per check and
round, only ever added), reading only the rows written since the last scrape."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Connection

from codefactory.observability.settled import SettledRows
from codefactory.store.models import CheckRunRow


@dataclass
class GateVerdicts:
    """`(check, "pass" | "fail")` → verdicts, advanced by `advance(connection)`."""

    rows: SettledRows = field(
        default_factory=lambda: SettledRows(CheckRunRow.id, [CheckRunRow.check, CheckRunRow.passed])
    )
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def advance(self, connection: Connection) -> None:
        """Count the verdicts recorded since the last call."""
        for _, check, passed in self.rows.advance(connection):
            self.counts[(check, "pass" if passed else "fail")] += 1
