"""The runs repository port: what the run loop and its desks read and write about runs.

`RunRepository` is the reading side and the way into one transaction (`atomic()`);
`RunWriter` is what one transaction can write, each write with its audit event in the same
transaction (so a crash never leaves a state without its audit record). The SQL adapter is
`codefactory.store.runs.RunStore` (and its `RunTransaction`); `runs/` knows only this module,
which import-linter checks (`[tool.importlinter]` in pyproject.toml).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy.orm import Session

from codefactory.audit.port import AuditRecord
from codefactory.domain import (
    AuditEvent,
    ChangePackage,
    CheckResult,
    Decision,
    Finding,
    Review,
    Run,
    RunState,
    TriggerEvent,
)


class RunWriter(Protocol):
    """The writes of one transaction; each appends its audit event in the same transaction.

    Errors: `transition` raises `codefactory.store.errors.InvalidTransition` for a move the
    state machine forbids and `RunNotFound` for an unknown run; any error rolls the whole
    transaction back.
    """

    @property
    def session(self) -> Session:
        """The transaction's SQLAlchemy session, for another repository whose rows must
        commit with these (the delegation token, the delivery queue)."""
        ...

    def append(self, event: AuditEvent) -> int:
        """Append one typed audit event inside this transaction; returns its leaf index."""
        ...

    def record_trigger(self, event: TriggerEvent) -> str:
        """Store a trigger event; returns its new id (`t-` and 12 hex digits)."""
        ...

    def create_run(
        self,
        *,
        trigger_id: str,
        event: TriggerEvent,
        sponsor: str,
        agent_id: str,
        engine: str = "",
        repository_path: str = "",
    ) -> str:
        """A new run in `received` for the stored trigger; returns its id."""
        ...

    def transition(
        self,
        run_id: str,
        target: RunState,
        *,
        reason: str = "",
        actor: str = "factory",
        **updates: str,
    ) -> None:
        """Move a run to `target` if the state machine allows it, with its audit event;
        `updates` sets run columns (`head_commit`, `branch`, `package_dir`, ...)."""
        ...

    def record_decision(self, run_id: str, *, stage: str, action: str, decision: Decision) -> None:
        """Store a policy decision taken at `stage` on `action`."""
        ...

    def record_checks(self, run_id: str, round_number: int, results: list[CheckResult]) -> None:
        """Store one gate round's check results and their findings."""
        ...

    def record_package(self, package: ChangePackage) -> None:
        """Store the change package's digest and location."""
        ...

    def record_review(self, review: Review, *, commit: str) -> None:
        """Store a reviewer's verdict on `commit`."""
        ...


class RunRepository(Protocol):
    """Reads of runs, triggers, decisions, findings, packages and reviews; atomic writes.

    Errors: `require_run` raises `codefactory.store.errors.RunNotFound`.
    """

    def atomic(self) -> AbstractContextManager[RunWriter]:
        """One transaction: everything written through it commits together, or nothing does."""
        ...

    def append(self, event: AuditEvent) -> int:
        """Append one typed audit event in a transaction of its own; returns its leaf index."""
        ...

    def audit_events(self, run_id: str) -> list[AuditRecord]:
        """The run's audit events, oldest first."""
        ...

    def get_run(self, run_id: str) -> Run | None:
        """The run with its state history, or None."""
        ...

    def require_run(self, run_id: str) -> Run:
        """The run with its state history; `RunNotFound` when there is none."""
        ...

    def run_ids_in_state(self, state: RunState, *, limit: int) -> list[str]:
        """Ids of at most `limit` runs now in `state`, oldest first."""
        ...

    def get_trigger(self, trigger_id: str) -> TriggerEvent | None:
        """The stored trigger event, or None."""
        ...

    def findings(self, run_id: str) -> list[tuple[int, Finding]]:
        """`(round, finding)` of every stored finding of the run."""
        ...

    def check_runs(self, run_id: str) -> list[dict[str, Any]]:
        """The run's stored check results as JSON-ready dicts, by round."""
        ...

    def decisions(self, run_id: str) -> list[dict[str, Any]]:
        """The run's policy decisions as JSON-ready dicts, oldest first."""
        ...

    def reviews(self, run_id: str) -> list[dict[str, Any]]:
        """The run's reviews as JSON-ready dicts, oldest first."""
        ...

    def get_package(self, run_id: str) -> dict[str, Any] | None:
        """The run's package row as a JSON-ready dict, or None."""
        ...


class EngineFigures(Protocol):
    """An engine's track record in this factory (ongoing monitoring's raw figures); the
    adapter's is `codefactory.store.runs.EngineRecord`."""

    def as_dict(self) -> dict[str, Any]:
        """`runs`, `no_change`, `approved`, `rejected`, `rounds`, `failed_rounds`,
        `spent_runs`, `cost_usd` and the three monitored rates (`acceptance_rate`,
        `gate_failure_rate`, `cost_per_run`; None when there is nothing to rate)."""
        ...
