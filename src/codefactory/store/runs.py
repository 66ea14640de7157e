"""The runs repository: every fact of a run is a row, written with its audit event atomically.

`RunStore.atomic()` opens one transaction; the rows and the audit events written through it
commit together or not at all, so a crash never leaves a state without its audit record.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from codefactory.audit.port import AuditLog, AuditRecord
from codefactory.audit.sql import lock_for_append
from codefactory.domain import (
    AuditEvent,
    ChangeKind,
    ChangePackage,
    CheckResult,
    Decision,
    Finding,
    Review,
    Run,
    RunState,
    Severity,
    StateChange,
    TriggerEvent,
    may_transition,
)
from codefactory.store.errors import InvalidTransition, RunNotFound
from codefactory.store.models import (
    CheckRunRow,
    DecisionRow,
    FindingRow,
    PackageRow,
    ReviewRow,
    RunRow,
    RunStateRow,
    TriggerRow,
)
from codefactory.store.trigger_tables import TriggerDetailRow

# The audit event types (`codefactory.audit.events`: every kind, about 140 ms to import) are
# imported by the writes that append them (and `store.leases`, which imports them, by
# `atomic`), so reads such as `runs list` never load them.
FACTORY_ACTOR = "factory"
RunChild = TypeVar("RunChild", FindingRow, CheckRunRow, DecisionRow, ReviewRow)


def now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def new_run_id() -> str:
    """A sortable, readable run id: `r-YYYYMMDD-HHMMSS-xxxxxx`."""
    return f"r-{now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


RUN_COLUMNS_MOVED = frozenset({"base_commit", "head_commit", "branch", "package_dir"})
"""The run columns a transition may set (each a field of its `run-state-changed` event)."""


class RunTransaction:
    """Writes of one transaction; each appends its audit event in the same transaction."""

    def __init__(self, session: Session, audit: AuditLog) -> None:
        self.session = session
        self._audit = audit

    def append(self, event: AuditEvent) -> int:
        """Append one typed audit event inside this transaction; returns its leaf index."""
        return self._audit.append(event, session=self.session)

    def record_trigger(self, event: TriggerEvent) -> str:
        from codefactory.audit.events import TriggerReceived

        trigger_id = f"t-{secrets.token_hex(6)}"
        self.session.add(
            TriggerRow(
                id=trigger_id,
                source=event.source,
                kind=event.kind.value,
                external_id=event.external_id,
                actor=event.actor,
                repository=event.repository,
                title=event.title,
                body=event.body,
                labels=list(event.labels),
                payload_digest=event.payload_digest,
                received_at=event.received_at,
            )
        )
        self.session.flush()  # the trigger row first: details and runs point at it
        self.session.add(
            TriggerDetailRow(
                trigger_id=trigger_id,
                delivery_id=event.delivery_id,
                event=event.event,
                autonomous=event.autonomous,
                links=list(event.links),
                attributes=dict(event.attributes),
                sender_kind=event.sender_kind,
                sender=event.sender,
                caused_by=event.caused_by,
            )
        )
        self.append(
            TriggerReceived(
                actor=f"{event.source}:{event.actor}",
                trigger_id=trigger_id,
                source=event.source,
                external_id=event.external_id,
                kind=event.kind.value,
                repository=event.repository,
                payload_digest=event.payload_digest,
                sender_kind=event.sender_kind,
                sender=event.sender,
                caused_by=event.caused_by,
            )
        )
        return trigger_id

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
        """A new run in `received` for the stored trigger; `event.repository` is the
        canonical id, `repository_path` the local checkout (empty when none is mapped)."""
        from codefactory.audit.events import RunCreated

        run_id = new_run_id()
        at = now()
        self.session.add(
            RunRow(
                id=run_id,
                trigger_id=trigger_id,
                kind=event.kind.value,
                repository=event.repository,
                sponsor=sponsor,
                agent_id=agent_id,
                state=RunState.RECEIVED.value,
                reason="",
                created_at=at,
                engine=engine,
                repository_path=repository_path,
            )
        )
        self.session.flush()
        self.session.add(RunStateRow(run_id=run_id, state=RunState.RECEIVED.value, at=at))
        self.append(
            RunCreated(
                actor=FACTORY_ACTOR,
                run_id=run_id,
                trigger_id=trigger_id,
                kind=event.kind.value,
                sponsor=sponsor,
                agent_id=agent_id,
                repository=event.repository,
                repository_path=repository_path,
                engine=engine,
            )
        )
        return run_id

    def transition(
        self,
        run_id: str,
        target: RunState,
        *,
        reason: str = "",
        actor: str = FACTORY_ACTOR,
        **updates: str,
    ) -> None:
        """Move a run to `target` if the state machine allows it, with its audit event."""
        from codefactory.audit.events import RunStateChanged

        row = self.session.get(RunRow, run_id, with_for_update=True)
        if row is None:
            raise RunNotFound(run_id)
        current = RunState(row.state)
        if not may_transition(current, target):
            raise InvalidTransition(run_id, current.value, target.value)
        row.state = target.value
        row.reason = reason
        for key, value in updates.items():
            if key not in RUN_COLUMNS_MOVED:
                raise TypeError(f"transition cannot set the run's {key}")
            setattr(row, key, value)
        self.session.add(RunStateRow(run_id=run_id, state=target.value, reason=reason, at=now()))
        self.append(
            RunStateChanged(
                actor=actor,
                run_id=run_id,
                previous=current.value,
                state=target.value,
                reason=reason,
                base_commit=updates.get("base_commit"),
                head_commit=updates.get("head_commit"),
                branch=updates.get("branch"),
                package_dir=updates.get("package_dir"),
            )
        )

    def record_decision(self, run_id: str, *, stage: str, action: str, decision: Decision) -> None:
        from codefactory.audit.events import PolicyDecided

        self.session.add(
            DecisionRow(
                run_id=run_id,
                stage=stage,
                action=action,
                allowed=decision.allowed,
                policy_ids=list(decision.policy_ids),
                reasons=list(decision.reasons) + list(decision.errors),
                at=now(),
            )
        )
        self.append(
            PolicyDecided(
                actor="policy",
                run_id=run_id,
                stage=stage,
                action=action,
                allowed=decision.allowed,
                policy_ids=list(decision.policy_ids),
                reasons=list(decision.reasons),
                errors=list(decision.errors),
            )
        )

    def record_checks(self, run_id: str, round_number: int, results: list[CheckResult]) -> None:
        from codefactory.audit.events import CheckCompleted

        for result in results:
            self.session.add(
                CheckRunRow(
                    run_id=run_id,
                    round=round_number,
                    check=result.check,
                    passed=result.passed,
                    summary=result.summary,
                )
            )
            for finding in result.findings:
                self.session.add(
                    FindingRow(
                        run_id=run_id,
                        round=round_number,
                        check=finding.check,
                        rule=finding.rule,
                        severity=finding.severity.value,
                        path=finding.path,
                        line=finding.line,
                        message=finding.message,
                        blocking=finding.blocking,
                    )
                )
            self.append(
                CheckCompleted(
                    actor=FACTORY_ACTOR,
                    run_id=run_id,
                    round=round_number,
                    check=result.check,
                    passed=result.passed,
                    findings=len(result.findings),
                    summary=result.summary,
                )
            )

    def record_package(self, package: ChangePackage) -> None:
        from codefactory.audit.events import PackageBuilt

        self.session.add(
            PackageRow(
                run_id=package.run_id,
                directory=str(package.directory),
                branch=package.branch,
                commit=package.commit,
                risk_level=package.risk_level,
                files=list(package.files),
            )
        )
        self.append(
            PackageBuilt(
                actor=FACTORY_ACTOR,
                run_id=package.run_id,
                directory=str(package.directory),
                branch=package.branch,
                commit=package.commit,
                risk_level=package.risk_level,
                files=list(package.files),
                package_digest=package.package_digest,
                attestation_digest=package.attestation_digest,
            )
        )

    def record_review(self, review: Review, *, commit: str) -> None:
        from codefactory.audit.events import ReviewRecorded

        self.session.add(
            ReviewRow(
                run_id=review.run_id,
                reviewer=review.reviewer,
                approved=review.approved,
                comment=review.comment,
                commit=commit,
                at=review.at,
            )
        )
        self.append(
            ReviewRecorded(
                actor=f"user:{review.reviewer}",
                run_id=review.run_id,
                approved=review.approved,
                comment=review.comment,
                commit=commit,
            )
        )


class RunStore:
    """Reads and atomic writes of runs, triggers, decisions, findings, packages and reviews."""

    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self.engine = engine
        self._audit = audit

    @contextmanager
    def atomic(self) -> Iterator[RunTransaction]:
        """One transaction: everything written through it commits together, or nothing does.
        It takes the audit log's append lock first (`audit.sql.lock_for_append`), so its row
        locks always come after it. Inside a worker's fenced block (`store.leases.fenced`),
        it starts and commits only while the worker holds the run's lease (the lease row
        stays locked on PostgreSQL; `LeaseLost` otherwise, nothing written)."""
        from codefactory.store.leases import check_fence  # imports the audit event types

        with Session(self.engine) as session, session.begin():
            lock_for_append(session)
            check_fence(session)
            yield RunTransaction(session, self._audit)
            check_fence(session)

    def append(self, event: AuditEvent) -> int:
        """Append one typed audit event in a transaction of its own (a fact that changes no
        state: a context read, a notification); returns its leaf index."""
        with self.atomic() as tx:
            return tx.append(event)

    def audit_events(self, run_id: str) -> list[AuditRecord]:
        """The run's audit events, oldest first."""
        return self._audit.events(run_id)

    def get_run(self, run_id: str) -> Run | None:
        with Session(self.engine) as session:
            row = session.get(RunRow, run_id)
            if row is None:
                return None
            states = session.scalars(
                select(RunStateRow).where(RunStateRow.run_id == run_id).order_by(RunStateRow.id)
            ).all()
            return _run(row, tuple(_state(s) for s in states))

    def require_run(self, run_id: str) -> Run:
        run = self.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    def search_runs(self, *, limit: int = 100, repository: str | None = None) -> list[Run]:
        """The newest `limit` runs, newest first; only those of the repository with canonical
        id `repository` when given."""
        query = select(RunRow)
        if repository is not None:
            query = query.where(RunRow.repository == repository)
        with Session(self.engine) as session:
            rows = session.scalars(
                query.order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit)
            ).all()
            return [_run(row, ()) for row in rows]

    def run_ids_in_state(self, state: RunState, *, limit: int) -> list[str]:
        """The ids of the newest `limit` runs in `state` (the indexed `runs.state`), newest
        first."""
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(RunRow.id)
                    .where(RunRow.state == state.value)
                    .order_by(RunRow.created_at.desc(), RunRow.id.desc())
                    .limit(limit)
                ).all()
            )

    def runs_with_head_commit(self, commit: str, *, limit: int = 2) -> list[Run]:
        """Runs whose packaged commit is `commit` (a full id) or, for an abbreviated hash
        (7 to 39 hex digits), starts with it; at most `limit`, newest first."""
        commit = commit.lower()
        if not re.fullmatch(r"[0-9a-f]{7,64}", commit):
            return []
        condition = (
            RunRow.head_commit == commit
            if len(commit) in (40, 64)
            else RunRow.head_commit.startswith(commit, autoescape=True)
        )
        with Session(self.engine) as session:
            rows = session.scalars(
                select(RunRow).where(condition).order_by(RunRow.created_at.desc()).limit(limit)
            ).all()
            return [_run(row, ()) for row in rows]

    def get_trigger(self, trigger_id: str) -> TriggerEvent | None:
        with Session(self.engine) as session:
            row = session.get(TriggerRow, trigger_id)
            if row is None:
                return None
            detail = session.get(TriggerDetailRow, trigger_id)
            return TriggerEvent(
                source=row.source,
                kind=ChangeKind(row.kind),
                external_id=row.external_id,
                actor=row.actor,
                repository=row.repository,
                title=row.title,
                body=row.body,
                labels=tuple(row.labels),
                received_at=_aware(row.received_at),
                payload_digest=row.payload_digest,
                links=tuple(detail.links) if detail else (),
                delivery_id=detail.delivery_id if detail else "",
                event=detail.event if detail else "",
                autonomous=detail.autonomous if detail else False,
                attributes=dict(detail.attributes) if detail else {},
                sender_kind=detail.sender_kind if detail else "",
                sender=detail.sender if detail else "",
                caused_by=detail.caused_by if detail else "",
            )

    def _of_run(self, model: type[RunChild], run_id: str) -> Sequence[RunChild]:
        """A run's rows of one table, in the order they were written."""
        with Session(self.engine) as session:
            return session.scalars(
                select(model).where(model.run_id == run_id).order_by(model.id)
            ).all()

    def findings(self, run_id: str) -> list[tuple[int, Finding]]:
        rows = self._of_run(FindingRow, run_id)
        return [
            (
                r.round,
                Finding(
                    check=r.check,
                    rule=r.rule,
                    message=r.message,
                    severity=Severity(r.severity),
                    path=r.path,
                    line=r.line,
                    blocking=r.blocking,
                ),
            )
            for r in rows
        ]

    def check_runs(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._of_run(CheckRunRow, run_id)
        return [
            {"round": r.round, "check": r.check, "passed": r.passed, "summary": r.summary}
            for r in rows
        ]

    def decisions(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._of_run(DecisionRow, run_id)
        return [
            {
                "stage": r.stage,
                "action": r.action,
                "allowed": r.allowed,
                "policy_ids": r.policy_ids,
                "reasons": r.reasons,
                "at": _aware(r.at).isoformat(),
            }
            for r in rows
        ]

    def engine_record(self, engine: str) -> EngineRecord:
        """What the store holds of an engine's runs: how many, the reviewers' verdicts, the
        verify rounds and how many failed, and what the gateway counted they spent."""
        from codefactory.audit.events import EngineSpend, typed

        with Session(self.engine) as session:
            outcomes = session.execute(
                select(RunRow.id, RunRow.state).where(RunRow.engine == engine)
            ).all()
            run_ids = [run_id for run_id, _ in outcomes]
            verdicts = list(
                session.scalars(
                    select(ReviewRow.approved)
                    .join(RunRow, ReviewRow.run_id == RunRow.id)
                    .where(RunRow.engine == engine)
                )
            )
            checks = session.execute(
                select(CheckRunRow.run_id, CheckRunRow.round, CheckRunRow.passed)
                .join(RunRow, CheckRunRow.run_id == RunRow.id)
                .where(RunRow.engine == engine)
            ).all()
        rounds: dict[tuple[str, int], bool] = {}
        for run_id, round_number, passed in checks:
            rounds[(run_id, round_number)] = rounds.get((run_id, round_number), True) and passed
        spends = [
            spent
            for run_id in run_ids
            for spent in map(typed, self._audit.events(run_id))
            if isinstance(spent, EngineSpend)
        ]
        return EngineRecord(
            runs=len(run_ids),
            no_change=sum(1 for _, state in outcomes if state == RunState.NO_CHANGE.value),
            approved=sum(1 for v in verdicts if v),
            rejected=sum(1 for v in verdicts if not v),
            rounds=len(rounds),
            failed_rounds=sum(1 for ok in rounds.values() if not ok),
            spent_runs=len(spends),
            cost_usd=sum(float(s.cost_usd) for s in spends),
        )

    def reviews(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._of_run(ReviewRow, run_id)
        return [
            {
                "reviewer": r.reviewer,
                "approved": r.approved,
                "comment": r.comment,
                "commit": r.commit,
                "at": _aware(r.at).isoformat(),
            }
            for r in rows
        ]

    def get_package(self, run_id: str) -> dict[str, Any] | None:
        with Session(self.engine) as session:
            row = session.get(PackageRow, run_id)
            if row is None:
                return None
            return {
                "directory": row.directory,
                "branch": row.branch,
                "commit": row.commit,
                "risk_level": row.risk_level,
                "files": row.files,
            }


@dataclass(frozen=True, kw_only=True)
class EngineRecord:
    """An engine's track record in this factory (ongoing monitoring's raw figures)."""

    runs: int
    no_change: int
    """Runs that ended `no_change`: the ticket needed no change (neither failed nor judged)."""
    approved: int
    rejected: int
    rounds: int
    failed_rounds: int
    spent_runs: int
    """Runs for which the gateway recorded a spend (language-model runs that reached it)."""
    cost_usd: float

    def as_dict(self) -> dict[str, Any]:
        """The figures and the three monitored rates (None when there is nothing to rate)."""
        reviewed = self.approved + self.rejected
        return {
            **asdict(self),
            "acceptance_rate": self.approved / reviewed if reviewed else None,
            "gate_failure_rate": self.failed_rounds / self.rounds if self.rounds else None,
            "cost_per_run": self.cost_usd / self.spent_runs if self.spent_runs else None,
        }


def _state(row: RunStateRow) -> StateChange:
    return StateChange(state=RunState(row.state), at=_aware(row.at), reason=row.reason)


def _run(row: RunRow, history: tuple[StateChange, ...]) -> Run:
    return Run(
        id=row.id,
        trigger_id=row.trigger_id,
        kind=ChangeKind(row.kind),
        repository=row.repository,
        sponsor=row.sponsor,
        agent_id=row.agent_id,
        state=RunState(row.state),
        reason=row.reason,
        base_commit=row.base_commit,
        head_commit=row.head_commit,
        branch=row.branch,
        package_dir=row.package_dir,
        created_at=_aware(row.created_at),
        engine=row.engine,
        repository_path=row.repository_path,
        history=history,
    )


def run_as_dict(run: Run) -> dict[str, Any]:
    """A run as JSON-ready data for `--json` output and the API."""
    data = asdict(run)
    data["kind"] = run.kind.value
    data["state"] = run.state.value
    data["created_at"] = run.created_at.isoformat()
    data["history"] = [
        {"state": s.state.value, "at": s.at.isoformat(), "reason": s.reason} for s in run.history
    ]
    return data
