"""The audit log as a hash chain in the store's `audit_events` table."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session

from codefactory.audit.chain import (
    GENESIS_HASH,
    ChainReport,
    Link,
    canonical_json,
    chain_link,
    leaf_record,
    verify_chain,
)
from codefactory.audit.errors import EventNotRecordable, RecordUnreadable
from codefactory.audit.port import AuditRecord
from codefactory.domain import AuditEvent
from codefactory.store.models import AuditEventRow

EVENT_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# Column widths of audit_events (store/models.py); PostgreSQL enforces them, SQLite does not.
LIMITS = {"name": 64, "actor": 256, "run_id": 64}
# Key of the transaction-scoped advisory lock that serializes appends on PostgreSQL.
PG_LOCK_KEY = 0x636F_6465_6175_6469  # "codeaudi"


class SqlAuditLog:
    """An `AuditLog` over SQLite or PostgreSQL.

    Appends are serialized by taking the database's write lock *before* the chain head (the
    row with the highest seq) is read, and holding it until the transaction ends, so the head
    cannot move between reading it and inserting the next link; this holds across threads and
    processes alike:

    - SQLite: the transaction starts with `BEGIN IMMEDIATE`, which takes the database's single
      writer lock, waiting up to the connection's `busy_timeout`. A read-then-write transaction
      would instead see a stale head or fail with SQLITE_BUSY_SNAPSHOT in WAL mode. If the
      session's transaction is already open, the driver (pysqlite's implicit transactions)
      opened it for a write, so it already holds the writer lock.
    - PostgreSQL: `pg_advisory_xact_lock`, released at commit or rollback; a row lock on the
      head would not protect the empty table.

    Whatever the dialect, `seq` is the primary key: a writer that got past a missing lock fails
    with an IntegrityError instead of forking the chain.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def append(self, event: AuditEvent, *, session: Session | None = None) -> int:
        """Record `event`; returns its seq.

        With `session`, the row is added to (and flushed in) that session's transaction and
        the caller commits, so a state change and its audit event commit together. Without,
        the log commits the event in a transaction of its own.
        """
        _check_recordable(event)
        if session is not None:
            return _append(session, event)
        with Session(self._engine) as own, own.begin():
            return _append(own, event)

    def verify(self) -> ChainReport:
        """Recompute the whole chain from the table (one consistent read)."""
        return verify_chain(_link(row) for row in self._rows(None))

    def events(self, run_id: str | None = None) -> list[AuditRecord]:
        """The recorded events in seq order, optionally only those of `run_id`."""
        return [_record(row) for row in self._rows(run_id)]

    def _rows(self, run_id: str | None) -> list[AuditEventRow]:
        query = select(AuditEventRow).order_by(AuditEventRow.seq)
        if run_id is not None:
            query = query.where(AuditEventRow.run_id == run_id)
        with Session(self._engine) as session:
            return list(session.scalars(query))


def _check_recordable(event: AuditEvent) -> None:
    if not EVENT_NAME.fullmatch(event.name):
        raise EventNotRecordable(event.name, "event names are kebab-case, like run-refused")
    for column, limit in LIMITS.items():
        if len(getattr(event, column)) > limit:
            raise EventNotRecordable(event.name, f"{column} is longer than {limit} characters")
    try:
        canonical_json(leaf_record(0, event))
    except (TypeError, ValueError) as error:
        raise EventNotRecordable(event.name, str(error)) from error


def _append(session: Session, event: AuditEvent) -> int:
    _lock_head(session.connection())
    head = session.execute(
        select(AuditEventRow.seq, AuditEventRow.hash).order_by(AuditEventRow.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (head.seq + 1, head.hash) if head is not None else (1, GENESIS_HASH)
    session.add(AuditEventRow(**asdict(chain_link(seq, event, prev_hash))))
    session.flush()
    return seq


def _lock_head(connection: Connection) -> None:
    """Take the lock that serializes appends, held until the transaction ends."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        dbapi_connection = connection.connection.dbapi_connection
        if not getattr(dbapi_connection, "in_transaction", False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":  # pragma: no cover - needs a PostgreSQL server and driver
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})


def _link(row: AuditEventRow) -> Link:
    return Link(
        seq=row.seq,
        name=row.name,
        actor=row.actor,
        run_id=row.run_id,
        at=row.at,
        data=row.data,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _record(row: AuditEventRow) -> AuditRecord:
    try:
        data = json.loads(row.data)
        at = datetime.fromisoformat(row.at)
    except ValueError as error:
        raise RecordUnreadable(row.seq, str(error)) from error
    if not isinstance(data, dict):
        raise RecordUnreadable(row.seq, "its data is not a JSON object")
    return AuditRecord(
        seq=row.seq,
        name=row.name,
        actor=row.actor,
        run_id=row.run_id,
        at=at,
        data=data,
        hash=row.hash,
    )
