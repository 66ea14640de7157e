"""Run leases: which worker owns a run that is under way, kept alive by heartbeats.

A worker drives a run only while it holds the run's lease (`run_leases`, one row per run).
`acquire` takes a free lease, renews one the caller already holds, or takes over one whose
owner stopped heartbeating (`expires_at` in the past), audited as `run-taken-over`. Every
acquisition raises the row's `fence` by one. While a worker drives a run, `fenced(lease)`
marks its thread's context, and every store transaction in that context checks, before it
commits, that the lease still carries the worker's fence (`check_fence`): a worker that was
paused past its lease and taken over can no longer write a single fact of the run, so a run
is never executed by two workers at once.

Times are UTC from the workers' clocks (keep them synchronised, e.g. NTP); a lease's length
should exceed the heartbeat interval by more than the clocks' skew.
"""

from __future__ import annotations

import contextvars
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from codefactory.audit.events import RunTakenOver
from codefactory.audit.port import AuditLog
from codefactory.audit.sql import lock_for_append
from codefactory.domain import RunState
from codefactory.store.deliveries import UNFINISHED
from codefactory.store.models import RunRow
from codefactory.store.operations_tables import RunLeaseRow
from codefactory.store.trigger_tables import DeliveryRow

TAKEN_OVER = RunTakenOver.NAME


class LeaseLost(Exception):
    """The worker's lease on the run was taken over (or released): it must stop at once."""

    def __init__(self, run_id: str, owner: str) -> None:
        super().__init__(
            f"the lease on run {run_id} is no longer held by {owner}: another worker took it "
            "over after this one stopped heartbeating"
        )
        self.run_id = run_id
        self.owner = owner


@dataclass(frozen=True, kw_only=True)
class Lease:
    """A held lease: `fence` is the acquisition number the row must still carry."""

    run_id: str
    owner: str
    fence: int
    taken_over_from: str = ""
    """The previous owner when this acquisition took an expired lease over, else empty."""
    takeovers: int = 0
    """How often the run's lease has been taken over, this acquisition included."""


def worker_name(role: str = "worker") -> str:
    """A name for this process that no other process shares: `role@host:pid:nonce`."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_FENCE: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("run_lease", default=None)

_LOST: dict[tuple[str, str, int], str] = {}
_LOST_LOCK = threading.Lock()


def _key(lease: Lease) -> tuple[str, str, int]:
    return (lease.run_id, lease.owner, lease.fence)


def mark_lost(lease: Lease, why: str) -> None:
    """Record, for this process, that `lease` is lost (taken over, or not renewed in time):
    the watch `lease_watch` gave for it then says why, so the engine commands its holder
    runs are stopped (`sandbox.halting`) instead of racing the new owner's. Keyed by the
    lease (run, owner, fence), so a later lease on the same run, even in this process, is
    not touched."""
    with _LOST_LOCK:
        _LOST[_key(lease)] = why


def forget_lost(lease: Lease) -> None:
    """Clear `lease`'s lost mark (its holder is done with the run)."""
    with _LOST_LOCK:
        _LOST.pop(_key(lease), None)


def lease_watch(run_id: str) -> Callable[[], str | None]:
    """A check, for the code about to run for `run_id` in this context, that says why its
    lease was lost (None while held); called where a worker's fenced block provisions the
    run's workspace. Outside a fenced block for that run, the check never says stop."""
    lease = _FENCE.get()
    if lease is None or lease.run_id != run_id:
        return lambda: None
    key = _key(lease)

    def lost() -> str | None:
        with _LOST_LOCK:
            return _LOST.get(key)

    return lost


@contextmanager
def fenced(lease: Lease) -> Iterator[None]:
    """Within this block, every store transaction of this context checks `lease` first."""
    token = _FENCE.set(lease)
    try:
        yield
    finally:
        _FENCE.reset(token)


def check_fence(session: Session) -> None:
    """Raise `LeaseLost` if the context's lease (see `fenced`) no longer holds, reading the
    lease row in `session`'s transaction (locked on PostgreSQL until commit, so a takeover
    waits for the write it would otherwise race); nothing to check outside a fenced block."""
    lease = _FENCE.get()
    if lease is None:
        return
    row = session.execute(
        select(RunLeaseRow.owner, RunLeaseRow.fence)
        .where(RunLeaseRow.run_id == lease.run_id)
        .with_for_update()
    ).first()
    if row is None or row.owner != lease.owner or row.fence != lease.fence:
        lost = LeaseLost(lease.run_id, lease.owner)
        mark_lost(lease, str(lost))
        raise lost


class RunLeases:
    """Acquire, renew, release and find expired run leases; `lease_s` is each lease's length
    in seconds from its last heartbeat."""

    def __init__(self, engine: Engine, audit: AuditLog, *, lease_s: float) -> None:
        self.engine = engine
        self.audit = audit
        self.lease_s = lease_s

    def acquire(self, run_id: str, owner: str) -> Lease | None:
        """The run's lease for `owner`: new, renewed (already `owner`'s), or taken over from an
        owner whose lease expired (audited `run-taken-over` with both owners and the run's
        state). None while another owner's lease is live."""
        now = _now()
        expires = now + timedelta(seconds=self.lease_s)
        with Session(self.engine) as session, session.begin():
            lock_for_append(session)  # a takeover appends: the log's lock before the row's
            row = session.get(RunLeaseRow, run_id, with_for_update=True)
            if row is None:
                session.add(
                    RunLeaseRow(
                        run_id=run_id, owner=owner, fence=1, acquired_at=now,
                        heartbeat_at=now, expires_at=expires, takeovers=0,
                    )
                )  # fmt: skip
                try:
                    session.flush()
                except IntegrityError:  # another worker inserted it first
                    return None
                return Lease(run_id=run_id, owner=owner, fence=1)
            previous = row.owner
            if previous and previous != owner and _aware(row.expires_at) > now:
                return None
            taken_over = bool(previous) and previous != owner
            last_heartbeat, expired_at = _aware(row.heartbeat_at), _aware(row.expires_at)
            row.owner, row.fence = owner, row.fence + 1
            row.acquired_at, row.heartbeat_at, row.expires_at = now, now, expires
            if taken_over:
                row.takeovers += 1
                state = session.scalar(select(RunRow.state).where(RunRow.id == run_id)) or ""
                self.audit.append(
                    RunTakenOver(
                        actor=f"dispatch:{owner}",
                        run_id=run_id,
                        previous_owner=previous,
                        owner=owner,
                        state=state,
                        last_heartbeat=last_heartbeat.isoformat(),
                        expired_at=expired_at.isoformat(),
                        fence=row.fence,
                        at=now,
                    ),
                    session=session,
                )
            return Lease(
                run_id=run_id,
                owner=owner,
                fence=row.fence,
                taken_over_from=previous if taken_over else "",
                takeovers=row.takeovers,
            )

    def heartbeat(self, lease: Lease) -> bool:
        """Extend `lease` by `lease_s` from now; False when it is no longer held (lost)."""
        now = _now()
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                update(RunLeaseRow)
                .where(
                    RunLeaseRow.run_id == lease.run_id,
                    RunLeaseRow.owner == lease.owner,
                    RunLeaseRow.fence == lease.fence,
                )
                .values(heartbeat_at=now, expires_at=now + timedelta(seconds=self.lease_s))
            )
            return bool(cast(CursorResult[Any], result).rowcount)

    def release(self, lease: Lease) -> None:
        """Give the lease up (the run rests or ended): the row stays, ownerless, keeping its
        fence and takeover count; a lease already lost is left alone."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(RunLeaseRow)
                .where(
                    RunLeaseRow.run_id == lease.run_id,
                    RunLeaseRow.owner == lease.owner,
                    RunLeaseRow.fence == lease.fence,
                )
                .values(owner="", expires_at=_now())
            )

    def expired(self, *, limit: int = 100) -> list[str]:
        """Runs whose owner stopped heartbeating before the run rested or ended (their lease
        expired, never released), oldest expiry first: the runs to take over."""
        terminal = [state.value for state in RunState if state.is_terminal]
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(RunLeaseRow.run_id)
                    .join(RunRow, RunRow.id == RunLeaseRow.run_id)
                    .where(
                        RunLeaseRow.owner != "",
                        RunLeaseRow.expires_at < _now(),
                        RunRow.state.not_in(terminal),
                    )
                    .order_by(RunLeaseRow.expires_at)
                    .limit(limit)
                ).all()
            )

    def orphans(
        self, *, older_than_s: float, resting: frozenset[str], limit: int = 100
    ) -> list[str]:
        """Runs under way that nothing will move on: not over, not resting (`resting`
        states), created more than `older_than_s` seconds ago, with no live lease and no
        unfinished delivery (a CLI run whose process died before leasing it; a delivery a
        forged or repeated message marked done while its real message was lost)."""
        now = _now()
        over = [state.value for state in RunState if state.is_terminal] + sorted(resting)
        live = select(RunLeaseRow.run_id).where(
            RunLeaseRow.run_id == RunRow.id, RunLeaseRow.owner != "", RunLeaseRow.expires_at >= now
        )
        waiting = select(DeliveryRow.id).where(
            DeliveryRow.run_id == RunRow.id, DeliveryRow.status.in_(UNFINISHED)
        )
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(RunRow.id)
                    .where(
                        RunRow.state.not_in(over),
                        RunRow.created_at < now - timedelta(seconds=older_than_s),
                        ~live.exists(),
                        ~waiting.exists(),
                    )
                    .order_by(RunRow.created_at)
                    .limit(limit)
                ).all()
            )

    def holder(self, run_id: str) -> str | None:
        """The owner of the run's live lease, or None."""
        with Session(self.engine) as session:
            row = session.get(RunLeaseRow, run_id)
            if row is None or not row.owner or _aware(row.expires_at) <= _now():
                return None
            return row.owner

    def total_takeovers(self) -> int:
        """Lease takeovers over all runs."""
        with Session(self.engine) as session:
            total = session.scalar(select(func.coalesce(func.sum(RunLeaseRow.takeovers), 0)))
            return int(total or 0)
