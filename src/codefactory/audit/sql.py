"""The audit log as a Merkle log in the store: leaves, a subtree cache, signed checkpoints."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from codefactory.audit.checkpoint import Checkpoint, open_checkpoint
from codefactory.audit.errors import (
    AuditError,
    CheckpointInvalid,
    EventNotRecordable,
    ProofInvalid,
    RecordUnreadable,
)
from codefactory.audit.leaf import EncodedEvent, LeafColumns, StoredLeaf, encode_event
from codefactory.audit.merkle import (
    inclusion_proof,
    range_hash,
)
from codefactory.audit.note import NoteSigner, NoteVerifier
from codefactory.audit.port import (
    AuditRecord,
    ConsistencyProof,
    InclusionProof,
    LogReport,
    SignedCheckpoint,
)
from codefactory.audit.sql_checkpoints import (
    consistency,
    require_extends,
    stored_checkpoints,
    with_consistency,
)
from codefactory.audit.tree import StoredTree, cache_completed_subtrees
from codefactory.audit.verify import TrustedCheckpoint, verify_batches
from codefactory.domain import AuditEvent
from codefactory.store.identity_tables import AuditCheckpointRow, AuditLogRow, AuditSubtreeRow
from codefactory.store.models import AuditEventRow

EVENT_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# Column widths of audit_events (store/models.py); PostgreSQL enforces them, SQLite does not.
LIMITS = {"name": 64, "actor": 256, "run_id": 64}
# Key of the transaction-scoped advisory lock that serializes appends on PostgreSQL.
PG_LOCK_KEY = 0x636F_6465_6175_6469  # "codeaudi"
_LEAF_COLUMNS = (
    AuditEventRow.seq,
    AuditEventRow.name,
    AuditEventRow.actor,
    AuditEventRow.run_id,
    AuditEventRow.at,
    AuditEventRow.data,
    AuditEventRow.leaf_hash,
)

_BATCH = 256
"""Rows fetched at a time when `audit verify` reads every row. Small on purpose:
the rows of a batch (and of the one before it) are alive while it is checked, and below the
garbage collector's threshold of 700 new objects they start no collection: at 256 or 512
rows `audit verify` of 50,000 events ran one, at 1000 rows a hundred, whose full collections
of the process's heap took about a tenth of its time."""

PublicKeys = Callable[[], Sequence[bytes]]
"""The raw Ed25519 public keys that may have signed checkpoints (current and retired)."""


class SqlAuditLog:
    """An `AuditLog` over SQLite or PostgreSQL.

    Appends are serialized by taking the database's write lock *before* the head (the
    highest seq) is read, and holding it until the transaction ends, so the head cannot move
    between reading it and inserting the next leaf; this holds across threads and processes:

    - SQLite: the transaction starts with `BEGIN IMMEDIATE`, which takes the database's single
      writer lock, waiting up to the connection's `busy_timeout`. If the session's transaction
      is already open, the driver (pysqlite's implicit transactions) opened it for a write, so
      it already holds the writer lock.
    - PostgreSQL: `pg_advisory_xact_lock`, released at commit or rollback.

    Whatever the dialect, `seq` is the primary key: a writer that got past a missing lock fails
    with an IntegrityError instead of forking the log. Checkpoints are signed by `sign` (the
    issuer's key) and checked against `public_keys`.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        sign: NoteSigner | None = None,
        public_keys: PublicKeys = lambda: (),
    ) -> None:
        self._engine = engine
        self._sign = sign
        self._public_keys = public_keys

    def append(self, event: AuditEvent, *, session: Session | None = None) -> int:
        """Record `event`; returns its leaf index.

        With `session`, the row (and any subtree it completes) is flushed in that session's
        transaction and the caller commits, so a state change and its audit event commit
        together. Without, the log commits the event in a transaction of its own.
        """
        encoded = _encode(event)
        if session is not None:
            return _append(session, encoded)
        with Session(self._engine) as own, own.begin():
            return _append(own, encoded)

    def events(self, run_id: str | None = None) -> list[AuditRecord]:
        """The recorded events in index order, optionally only those of `run_id`."""
        query = select(AuditEventRow).order_by(AuditEventRow.seq)
        if run_id is not None:
            query = query.where(AuditEventRow.run_id == run_id)
        with Session(self._engine) as session:
            return [_record(row) for row in session.scalars(query)]

    def latest(self, name: str) -> AuditRecord | None:
        """The most recent event called `name`, or None."""
        query = (
            select(AuditEventRow)
            .where(AuditEventRow.name == name)
            .order_by(AuditEventRow.seq.desc())
            .limit(1)
        )
        with Session(self._engine) as session:
            row = session.scalars(query).first()
            return _record(row) if row is not None else None

    def leaves(self) -> Iterator[StoredLeaf]:
        """Every stored leaf in index order, streamed."""
        with self._engine.connect() as connection:
            yield from _stream_leaves(connection)

    @property
    def origin(self) -> str:
        """The log's name, first line of its checkpoints."""
        with Session(self._engine) as session:
            return _origin(session.connection())

    def verifiers(self) -> list[NoteVerifier]:
        """Every key that may have signed this log's checkpoints."""
        origin = self.origin
        return [NoteVerifier(name=origin, public_key=key) for key in self._public_keys()]

    # -- verification -----------------------------------------------------------------------

    def verify(
        self, *, checkpoint: str | None = None, witnessed: Sequence[TrustedCheckpoint] = ()
    ) -> LogReport:
        """Recompute every leaf and the tree in one read transaction; compare with every stored
        checkpoint, with `witnessed` ones (cosigned by witnesses, checked by the caller), and
        with `checkpoint` (a saved note) if given, proving consistency. A byte of the SQLite
        file that is not UTF-8 is its row altered (`store.db.stored_text`, on a second read:
        the first uses the driver's own decoding, the fast one: `_driver_decoding`)."""
        try:
            with self._engine.connect() as connection, _driver_decoding(connection):
                return self._verify(connection, checkpoint, witnessed)
        except OperationalError as err:  # read again, each bad byte then in its row's text
            if "decode to UTF-8" not in str(err.orig):
                raise
        with self._engine.connect() as connection:
            return self._verify(connection, checkpoint, witnessed)

    def _verify(
        self,
        connection: Connection,
        checkpoint: str | None,
        witnessed: Sequence[TrustedCheckpoint],
    ) -> LogReport:
        verifiers = self.verifiers()
        origin = _origin(connection)
        trusted, untrusted = stored_checkpoints(connection, origin, verifiers)
        trusted.extend(witnessed)
        given = None
        if checkpoint is not None:
            try:
                given, _ = open_checkpoint(checkpoint, origin=origin, verifiers=verifiers)
            except CheckpointInvalid as error:
                return LogReport(ok=False, count=0, reason=f"checkpoint rejected: {error}")
            trusted.append(TrustedCheckpoint(checkpoint=given, label="the given checkpoint"))
        size = connection.execute(select(func.count()).select_from(AuditEventRow)).scalar_one()
        cached = {
            (row.level, row.position): row.hash
            for row in connection.execute(select(AuditSubtreeRow))
        }
        batches = _stream_batches(connection)
        try:
            report = verify_batches(
                batches, size=size, cached=cached, checkpoints=trusted, untrusted=untrusted
            )
        finally:
            batches.close()  # a server-side cursor must close before its connection
        if given is None or not report.ok or given.size == 0:
            return report
        return with_consistency(report, given, StoredTree(connection))

    def signed_checkpoints(self) -> list[Checkpoint]:
        """The stored checkpoints whose signature by this log's keys verifies, by size."""
        with self._engine.connect() as connection:
            trusted, _ = stored_checkpoints(connection, _origin(connection), self.verifiers())
        return sorted((t.checkpoint for t in trusted), key=lambda c: c.size)

    # -- checkpoints and proofs -------------------------------------------------------------

    def checkpoint(self) -> SignedCheckpoint:
        """Sign a checkpoint of the current tree, unless the latest one already covers it.

        Refuses (LogInconsistent) to sign a tree that does not extend the latest checkpoint:
        a log never signs two inconsistent checkpoints.
        """
        if self._sign is None:
            raise AuditError("no signing key is configured for checkpoints")
        with Session(self._engine) as session, session.begin():
            connection = session.connection()
            _lock_head(connection)
            origin = _origin(connection)
            size = _size(connection)
            latest = session.scalars(
                select(AuditCheckpointRow)
                .order_by(AuditCheckpointRow.size.desc(), AuditCheckpointRow.id.desc())
                .limit(1)
            ).first()
            tree = StoredTree(connection)
            if latest is not None:
                require_extends(tree, latest, size)
                if latest.size == size:
                    return self._signed(origin, latest.note)
            root = range_hash(tree, 0, size)
            note = Checkpoint(origin=origin, size=size, root=root).sign(self._sign)
            session.add(
                AuditCheckpointRow(
                    size=size, root_hash=root.hex(), note=note, created_at=datetime.now(UTC)
                )
            )
            return self._signed(origin, note)

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """The largest stored checkpoint whose signature by this log's keys verifies and
        whose size and root columns agree with its note; signs nothing."""
        verifiers = self.verifiers()
        with self._engine.connect() as connection:
            origin = _origin(connection)
            rows = connection.execute(
                select(AuditCheckpointRow).order_by(
                    AuditCheckpointRow.size.desc(), AuditCheckpointRow.id.desc()
                )
            )
            for row in rows:
                try:
                    checkpoint, verifier = open_checkpoint(
                        row.note, origin=origin, verifiers=verifiers
                    )
                except CheckpointInvalid:
                    continue
                if (checkpoint.size, checkpoint.root.hex()) == (row.size, row.root_hash):
                    return SignedCheckpoint(
                        checkpoint=checkpoint, note=row.note, verifier_key=verifier.encoded()
                    )
        return None

    def _signed(self, origin: str, note: str) -> SignedCheckpoint:
        verifiers = [NoteVerifier(name=origin, public_key=key) for key in self._public_keys()]
        checkpoint, verifier = open_checkpoint(note, origin=origin, verifiers=verifiers)
        return SignedCheckpoint(checkpoint=checkpoint, note=note, verifier_key=verifier.encoded())

    def inclusion_proof(self, index: int, size: int) -> InclusionProof:
        """RFC 9162 §2.1.3.1 proof for leaf `index` in the tree of `size` leaves."""
        with self._engine.connect() as connection:
            _require_size(connection, size)
            tree = StoredTree(connection)
            hashes = inclusion_proof(tree, index, size)
            return InclusionProof(
                index=index,
                size=size,
                leaf_hash=tree.perfect(0, index),
                hashes=tuple(hashes),
                root=range_hash(tree, 0, size),
            )

    def consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        """RFC 9162 §2.1.4.1 proof that tree `first` is a prefix of tree `second`."""
        with self._engine.connect() as connection:
            _require_size(connection, second)
            tree = StoredTree(connection)
            return consistency(tree, first, second)


def _require_size(connection: Connection, size: int) -> None:
    current = _size(connection)
    if not 0 <= size <= current:
        raise ProofInvalid(f"the log holds {current} events; no tree of size {size}")


def _size(connection: Connection) -> int:
    head = connection.execute(select(func.max(AuditEventRow.seq))).scalar()
    return 0 if head is None else int(head) + 1


def _origin(connection: Connection) -> str:
    origin = connection.execute(select(AuditLogRow.origin).where(AuditLogRow.id == 1)).scalar()
    if origin is None:
        raise AuditError("the store has no audit_log row: run the migrations")
    return str(origin)


@contextmanager
def _driver_decoding(connection: Connection) -> Iterator[None]:
    """On SQLite, text columns read through `connection` are decoded by the driver itself
    while it is held (`str`, in C), not by the store's `stored_text` (a Python call per
    value): `verify`'s first read of every row, redone with `stored_text` only when it
    meets a byte that is not UTF-8 (OperationalError). Restored afterwards: the pool hands
    the connection to others."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw: Any = connection.connection.driver_connection  # a sqlite3.Connection
    before = raw.text_factory
    raw.text_factory = str
    try:
        yield
    finally:
        raw.text_factory = before


def _stream_leaves(connection: Connection) -> Generator[StoredLeaf, None, None]:
    rows = _stream_rows(connection)
    try:
        for row in rows:
            yield StoredLeaf.from_columns(row)
    finally:
        rows.close()


def _stream_batches(connection: Connection) -> Generator[list[LeafColumns], None, None]:
    """Every stored row in index order, in lists of up to `_BATCH` rows as the driver returns
    them (a server-side cursor on PostgreSQL; no object per row)."""
    result = connection.execution_options(stream_results=True, yield_per=_BATCH).execute(
        select(*_LEAF_COLUMNS).order_by(AuditEventRow.seq)
    )
    try:
        # A Row unpacks and indexes as the tuple of its columns, all verification asks of it.
        yield from cast(Iterator[list[LeafColumns]], result.partitions())
    finally:
        result.close()


def _stream_rows(connection: Connection) -> Generator[LeafColumns, None, None]:
    """Every stored row in index order, as the driver returns it (no object per row)."""
    result = connection.execution_options(stream_results=True, yield_per=5000).execute(
        select(*_LEAF_COLUMNS).order_by(AuditEventRow.seq)
    )
    try:
        # A Row unpacks and indexes as the tuple of its columns, all verification asks of it.
        yield from cast(Iterator[LeafColumns], result)
    finally:
        result.close()


def check_recordable(event: AuditEvent) -> None:
    """Raise EventNotRecordable when `event` could not be appended (a name that is not
    kebab-case, a column over its `LIMITS` or holding NUL, a value RFC 8785 has no form
    for): for a caller about to do something outside the database first (make a key) that
    the event must then record."""
    _encode(event)


def _encode(event: AuditEvent) -> EncodedEvent:
    if not EVENT_NAME.fullmatch(event.name):
        raise EventNotRecordable(event.name, "event names are kebab-case, like run-refused")
    for column, limit in LIMITS.items():
        if len(getattr(event, column)) > limit:
            raise EventNotRecordable(event.name, f"{column} is longer than {limit} characters")
        if "\x00" in getattr(event, column):  # PostgreSQL's text cannot hold it: refused alike
            raise EventNotRecordable(event.name, f"{column} holds a NUL character")
    try:
        return encode_event(event)
    except (TypeError, ValueError) as error:
        raise EventNotRecordable(event.name, str(error)) from error


def _append(session: Session, encoded: EncodedEvent) -> int:
    connection = session.connection()
    _lock_head(connection)
    seq = _size(connection)
    connection.execute(insert(AuditEventRow), asdict(encoded.leaf(seq)))
    cache_completed_subtrees(connection, seq)
    return seq


def lock_for_append(session: Session) -> None:
    """Take, at the start of `session`'s transaction, the lock every append takes (held until
    the transaction ends; taking it again is harmless). A transaction that will lock rows and
    append takes it first, so every such transaction locks in the same order (the log's
    head, then rows) and two of them never deadlock on PostgreSQL; on SQLite it is the write
    lock (`BEGIN IMMEDIATE`)."""
    _lock_head(session.connection())


def _lock_head(connection: Connection) -> None:
    """Take the lock that serializes appends, held until the transaction ends."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        dbapi_connection = connection.connection.dbapi_connection
        if not getattr(dbapi_connection, "in_transaction", False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})


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
        leaf_hash=row.leaf_hash,
    )
