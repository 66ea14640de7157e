"""The Merkle audit log in a real store (SQLite, and PostgreSQL when a server answers):
appends, atomic commits, concurrency, the subtree cache, checkpoints and tampering by hand."""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from codefactory.audit import (
    AuditError,
    AuditRecord,
    EventNotRecordable,
    LogInconsistent,
    ProofInvalid,
    RecordUnreadable,
)
from codefactory.audit.checkpoint import Checkpoint
from codefactory.audit.leaf import stored_leaf
from codefactory.audit.merkle import (
    LeafList,
    consistency_proof,
    inclusion_proof,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from codefactory.audit.sql import SqlAuditLog
from codefactory.domain import AuditEvent, UnknownEvent
from codefactory.store.db import open_engine
from codefactory.store.models import AuditEventRow, TriggerRow
from codefactory.store.schema import metadata

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
NAMES = ["trigger-received", "run-authorized", "run-state-changed", "check-finished"]
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def event(index: int, run_id: str = "run-1") -> AuditEvent:
    return UnknownEvent(
        kind=NAMES[index % len(NAMES)],
        actor="factory",
        run_id=run_id,
        payload={"index": index, "note": "é"},
        at=T0 + timedelta(seconds=index),
    )


@dataclass
class Store:
    """A fresh, migrated database and its URL."""

    url: str
    engine: Engine


def _postgres_admin() -> Engine | None:
    try:
        admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with admin.connect():
            return admin
    except Exception:  # noqa: BLE001 - no server or no driver: PostgreSQL variants skip
        return None


ADMIN = _postgres_admin()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Store]:
    """One migrated PostgreSQL database for the module; each test starts from empty tables."""
    if ADMIN is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    name = f"cf_audit_{secrets.token_hex(4)}"
    with ADMIN.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    url = POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    engine = open_engine(url)
    yield Store(url, engine)
    engine.dispose()
    with ADMIN.connect() as connection:
        connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


def emptied(store: Store) -> Store:
    tables = [t.name for t in metadata.sorted_tables if t.name != "audit_log"]
    with store.engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        connection.exec_driver_sql("DELETE FROM audit_log")
        connection.exec_driver_sql(
            "INSERT INTO audit_log (id, origin) VALUES (1, 'codefactory.invalid/audit/pg')"
        )
    return store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh database per test: a SQLite file, or the module's PostgreSQL one emptied."""
    if request.param == "postgresql":
        yield emptied(request.getfixturevalue("postgres"))
        return
    url = f"sqlite:///{tmp_path / 'f.db'}"
    engine = open_engine(url)
    yield Store(url, engine)
    engine.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """For tests of many processes: SQLite's single-writer lock is the one to exercise;
    PostgreSQL's advisory lock is exercised by the threads test."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    engine = open_engine(url)
    yield Store(url, engine)
    engine.dispose()


@dataclass
class Key:
    """A real Ed25519 key signing checkpoints, as the issuer's key file does."""

    private: Ed25519PrivateKey

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes_raw()

    def sign(self, message: bytes) -> tuple[bytes, bytes]:
        return self.public, self.private.sign(message)


@pytest.fixture
def key() -> Key:
    return Key(Ed25519PrivateKey.generate())


@pytest.fixture
def log(store: Store, key: Key) -> SqlAuditLog:
    return SqlAuditLog(store.engine, sign=key.sign, public_keys=lambda: [key.public])


def fill(log: SqlAuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.append(event(i, run_id=f"run-{i % 2}"))


def tamper(store: Store, *statements: str) -> None:
    """Edit the database by hand, as someone with write access to it would."""
    with store.engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def test_appends_number_leaves_from_zero(log: SqlAuditLog) -> None:
    assert [log.append(event(i)) for i in range(3)] == [0, 1, 2]
    records = log.events()
    assert [r.seq for r in records] == [0, 1, 2]
    assert records[0] == AuditRecord(
        seq=0,
        name="trigger-received",
        actor="factory",
        run_id="run-1",
        at=T0,
        data={"index": 0, "note": "é"},
        leaf_hash=stored_leaf(0, event(0)).leaf_hash,
    )
    report = log.verify()
    leaves = [bytes.fromhex(r.leaf_hash) for r in records]
    assert (report.ok, report.count, report.root_hash) == (True, 3, root_of(leaves).hex())


def test_an_empty_log_verifies(log: SqlAuditLog) -> None:
    report = log.verify()
    assert report.ok and report.root_hash == hashlib.sha256().hexdigest()
    assert log.events() == [] and list(log.leaves()) == []


def test_events_of_one_run(log: SqlAuditLog) -> None:
    fill(log, 6)
    assert [r.seq for r in log.events("run-1")] == [1, 3, 5]
    assert log.events("run-7") == []


def test_stored_row_holds_canonical_data_and_utc_time(log: SqlAuditLog, store: Store) -> None:
    log.append(
        UnknownEvent(
            kind="run-refused",
            actor="factory",
            payload={"b": 1.0, "a": ["x"]},
            at=datetime(2025, 3, 1, 10, 30, tzinfo=UTC).astimezone(),
        )
    )
    with Session(store.engine) as session:
        row = session.scalars(select(AuditEventRow)).one()
    assert (row.seq, row.data, row.at) == (0, '{"a":["x"],"b":1}', "2025-03-01T10:30:00.000000Z")
    leaf = (
        '{"actor":"factory","at":"2025-03-01T10:30:00.000000Z","data":{"a":["x"],"b":1},'
        '"name":"run-refused","run_id":"","seq":0}'
    )
    assert row.leaf_hash == hashlib.sha256(b"\x00" + leaf.encode()).hexdigest()


def trigger(trigger_id: str) -> TriggerRow:
    return TriggerRow(
        id=trigger_id,
        source="cli",
        kind="bump_dependency",
        external_id="1",
        actor="alice",
        repository="sample-service",
        title="bump",
        body="",
        labels=[],
        payload_digest="sha256:00",
        received_at=T0,
    )


def test_append_in_a_session_commits_or_rolls_back_with_the_callers_change(
    log: SqlAuditLog, store: Store
) -> None:
    with Session(store.engine) as session:
        session.add(trigger("t-1"))
        assert log.append(event(0), session=session) == 0
        assert log.append(event(1), session=session) == 1
        session.rollback()
    assert log.events() == []
    with Session(store.engine) as session, session.begin():
        assert session.get(TriggerRow, "t-1") is None
        session.add(trigger("t-2"))
        log.append(event(0), session=session)
    with Session(store.engine) as session:
        assert session.get(TriggerRow, "t-2") is not None
    assert [r.seq for r in log.events()] == [0]
    assert log.verify().ok


def test_append_joins_a_transaction_that_already_wrote(log: SqlAuditLog, store: Store) -> None:
    fill(log, 2)
    with Session(store.engine) as session, session.begin():
        session.add(trigger("t-1"))
        session.flush()  # the session's transaction now holds SQLite's writer lock
        assert log.append(event(2), session=session) == 2
    assert log.verify().ok


@pytest.mark.parametrize(
    ("event_", "message"),
    [
        (UnknownEvent(kind="Run_Refused", actor="f", at=T0), "kebab-case"),
        (UnknownEvent(kind="run-refused", actor="f" * 257, at=T0), "actor is longer than 256"),
        (UnknownEvent(kind="run-refused", actor="f", run_id="r" * 65, at=T0), "run_id is longer"),
        (UnknownEvent(kind="run-refused", actor="f", at=datetime(2025, 1, 1)), "no time zone"),
        (UnknownEvent(kind="run-refused", actor="f", payload={"x": float("nan")}, at=T0), "nan"),
        (
            UnknownEvent(kind="run-refused", actor="f", payload={"x": {1, 2}}, at=T0),
            "set has no JSON",
        ),
        (UnknownEvent(kind="run-refused", actor="\ud800", at=T0), "surrogate"),
    ],
)
def test_events_that_cannot_be_recorded_are_refused(
    log: SqlAuditLog, event_: AuditEvent, message: str
) -> None:
    with pytest.raises(EventNotRecordable, match=message):
        log.append(event_)
    assert log.events() == []


def test_concurrent_threads_keep_one_log(log: SqlAuditLog) -> None:
    errors: list[BaseException] = []

    def worker(thread: int) -> None:
        try:
            for i in range(40):
                log.append(event(i, run_id=f"thread-{thread}"))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [r.seq for r in log.events()] == list(range(320))
    report = log.verify()
    assert (report.ok, report.count) == (True, 320), report.reason


WRITER = """
import sys
from datetime import UTC, datetime
from codefactory.audit.sql import SqlAuditLog
from codefactory.domain import UnknownEvent
from codefactory.store.db import open_engine
log = SqlAuditLog(open_engine(sys.argv[1]))
for i in range(int(sys.argv[3])):
    log.append(UnknownEvent(kind="run-state-changed", actor=sys.argv[2], payload={"i": i},
                          at=datetime.now(UTC)))
"""


def test_concurrent_processes_keep_one_log(sqlite_store: Store) -> None:
    store, log = sqlite_store, SqlAuditLog(sqlite_store.engine)
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, store.url, f"process-{p}", "30"])
        for p in range(3)
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0]
    assert [r.seq for r in log.events()] == list(range(90))
    assert log.verify().ok


# --- the subtree cache and proofs --------------------------------------------------------


def test_proofs_from_the_cache_equal_proofs_from_the_leaves(log: SqlAuditLog, store: Store) -> None:
    fill(log, 1030)
    with store.engine.connect() as connection:
        cached = connection.execute(text("SELECT level, position FROM audit_subtrees")).all()
    assert sorted(cached) == [(8, 0), (8, 1), (8, 2), (8, 3), (9, 0), (9, 1), (10, 0)]
    leaves = [bytes.fromhex(leaf.leaf_hash) for leaf in log.leaves()]
    memory = LeafList(leaves)
    for index, size in [(0, 1), (5, 300), (511, 512), (700, 1030), (1029, 1030), (1023, 1024)]:
        proof = log.inclusion_proof(index, size)
        assert list(proof.hashes) == inclusion_proof(memory, index, size)
        assert proof.root == root_of(leaves[:size]) and proof.leaf_hash == leaves[index]
        verify_inclusion(index, size, proof.leaf_hash, proof.hashes, proof.root)
    for first, second in [(1, 1030), (256, 1030), (700, 1024), (1030, 1030)]:
        consistency = log.consistency_proof(first, second)
        assert list(consistency.hashes) == consistency_proof(memory, first, second)
        verify_consistency(
            first, second, consistency.hashes, consistency.first_root, consistency.second_root
        )
    assert log.verify().ok


def test_proofs_outside_the_log_are_refused(log: SqlAuditLog) -> None:
    fill(log, 3)
    with pytest.raises(ProofInvalid, match="no tree of size 4"):
        log.inclusion_proof(0, 4)
    with pytest.raises(ProofInvalid, match="not in a tree"):
        log.inclusion_proof(3, 3)
    with pytest.raises(ProofInvalid, match="no consistency proof"):
        log.consistency_proof(0, 3)


def test_an_edited_cache_row_is_named(log: SqlAuditLog, store: Store) -> None:
    fill(log, 520)
    tamper(store, f"UPDATE audit_subtrees SET hash = '{'ab' * 32}' WHERE level = 8")
    report = log.verify()
    assert not report.ok
    assert "cached subtree hash (level 8, position 0)" in report.reason
    tamper(store, "DELETE FROM audit_subtrees")
    with pytest.raises(ProofInvalid, match="no cached subtree"):
        log.inclusion_proof(0, 260)


def test_a_missing_leaf_or_log_identity_is_named(log: SqlAuditLog, store: Store) -> None:
    fill(log, 20)
    tamper(store, "DELETE FROM audit_events WHERE seq = 17")
    with pytest.raises(ProofInvalid, match="leaves 17..17 are not all stored"):
        log.inclusion_proof(16, 20)
    tamper(store, "DELETE FROM audit_log")
    with pytest.raises(AuditError, match="no audit_log row"):
        log.verify()


# --- checkpoints ------------------------------------------------------------------------


def test_checkpoints_are_signed_notes_of_the_tree(log: SqlAuditLog, key: Key) -> None:
    fill(log, 5)
    signed = log.checkpoint()
    root = root_of([bytes.fromhex(leaf.leaf_hash) for leaf in log.leaves()])
    assert signed.checkpoint == Checkpoint(origin=log.origin, size=5, root=root)
    body, signature = signed.note.split("\n\n")
    assert body + "\n" == signed.checkpoint.body()
    assert signature.startswith(f"\u2014 {log.origin} ")
    assert signed.verifier_key.startswith(f"{log.origin}+")
    assert log.checkpoint().note == signed.note  # nothing new: the same checkpoint
    fill(log, 2, start=5)
    later = log.checkpoint()
    assert later.checkpoint.size == 7
    report = log.verify()
    assert (report.ok, report.checkpoints) == (True, 2)


def test_a_log_without_a_key_cannot_sign(store: Store) -> None:
    with pytest.raises(AuditError, match="no signing key"):
        SqlAuditLog(store.engine).checkpoint()


def test_the_empty_log_has_a_checkpoint_too(log: SqlAuditLog) -> None:
    signed = log.checkpoint()
    assert signed.checkpoint.size == 0
    assert signed.checkpoint.root == hashlib.sha256().digest()
    assert log.verify(checkpoint=signed.note).ok


def test_truncation_below_a_checkpoint_is_named(log: SqlAuditLog, store: Store) -> None:
    fill(log, 8)
    log.checkpoint()
    tamper(store, "DELETE FROM audit_events WHERE seq >= 6")
    report = log.verify()
    assert (report.ok, report.first_bad_seq) == (False, 6)
    assert "events 6..7 are missing" in report.reason and "truncated" in report.reason
    with pytest.raises(LogInconsistent, match="refusing to sign"):
        log.checkpoint()


def rewrite(store: Store, seq: int, data: str) -> None:
    """A careful forger: edits a row and writes the leaf hash that matches the edit."""
    with Session(store.engine) as session, session.begin():
        row = session.get(AuditEventRow, seq)
        assert row is not None
        row.data = data
        forged = stored_leaf(seq, UnknownEvent(kind=row.name, actor=row.actor, run_id=row.run_id,
                                             payload={"forged": True},
                                             at=datetime.fromisoformat(row.at)))  # fmt: skip
        row.leaf_hash = forged.leaf_hash


def test_a_rewrite_with_matching_leaf_hashes_is_caught_by_the_checkpoint(
    log: SqlAuditLog, store: Store
) -> None:
    fill(log, 4)
    log.checkpoint()
    fill(log, 4, start=4)
    log.checkpoint()
    rewrite(store, 5, '{"forged":true}')
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 4
    assert "do not hash to the root of signed checkpoint #2" in report.reason
    assert "between index 4 and 7" in report.reason
    with pytest.raises(LogInconsistent, match="rewritten; refusing to sign"):
        fill(log, 1, start=8)
        log.checkpoint()


def test_the_first_checkpoint_a_rewrite_breaks_is_named(log: SqlAuditLog, store: Store) -> None:
    fill(log, 4)
    log.checkpoint()
    fill(log, 4, start=4)
    log.checkpoint()
    rewrite(store, 1, '{"forged":true}')
    report = log.verify()
    assert (report.ok, report.first_bad_seq) == (False, 0)
    assert "root of signed checkpoint #1: events between index 0 and 3" in report.reason
    assert report.as_dict()["first_bad_seq"] == 0 and report.as_dict()["consistency"] is None


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE audit_checkpoints SET note = replace(note, '\n3\n', '\n2\n')", "bad-signature"),
        ("UPDATE audit_checkpoints SET size = 2", "size or root column was edited"),
        ("UPDATE audit_log SET origin = 'elsewhere'", "foreign-origin"),
    ],
)
def test_an_edited_checkpoint_row_is_named(
    log: SqlAuditLog, store: Store, statement: str, message: str
) -> None:
    fill(log, 3)
    log.checkpoint()
    tamper(store, statement)
    report = log.verify()
    assert not report.ok and message in report.reason


def test_verify_against_a_saved_checkpoint_proves_consistency(log: SqlAuditLog) -> None:
    fill(log, 5)
    saved = log.checkpoint().note
    fill(log, 20, start=5)
    report = log.verify(checkpoint=saved)
    assert report.ok and report.consistency is not None
    assert (report.consistency.first, report.consistency.second) == (5, 25)
    assert "extends the given checkpoint of size 5" in report.reason


def test_a_saved_checkpoint_the_log_no_longer_extends_is_named(
    log: SqlAuditLog, store: Store, key: Key
) -> None:
    fill(log, 6)
    saved = log.checkpoint().note
    tamper(store, "DELETE FROM audit_checkpoints", "DELETE FROM audit_events WHERE seq >= 4")
    report = log.verify(checkpoint=saved)
    assert not report.ok and report.first_bad_seq == 4
    assert "shorter than the given checkpoint of size 6 (truncated)" in report.reason


def test_a_checkpoint_of_another_log_or_key_is_rejected(log: SqlAuditLog, store: Store) -> None:
    fill(log, 2)
    other = Key(Ed25519PrivateKey.generate())
    foreign = Checkpoint(origin="other.example/log", size=2, root=bytes(32)).sign(other.sign)
    report = log.verify(checkpoint=foreign)
    assert not report.ok and "from another log" in report.reason
    unknown = Checkpoint(origin=log.origin, size=2, root=bytes(32)).sign(other.sign)
    report = log.verify(checkpoint=unknown)
    assert not report.ok and "signed by no key of this log" in report.reason
    assert not log.verify(checkpoint="hello\n").ok


# --- tampering with the rows by hand -------------------------------------------------------


def test_an_edited_row_is_named_by_verify(log: SqlAuditLog, store: Store) -> None:
    fill(log, 8)
    tamper(store, """UPDATE audit_events SET data = '{"x":1}' WHERE seq = 4""")
    report = log.verify()
    assert not report.ok
    assert (report.first_bad_seq, report.first_bad_name) == (4, "trigger-received")
    assert report.reason == "event 4 (trigger-received) was altered"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET name = 'run-approved' WHERE seq = 4",
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 4",
        "UPDATE audit_events SET run_id = 'run-9' WHERE seq = 4",
        "UPDATE audit_events SET at = '2025-03-01T09:30:04.000001Z' WHERE seq = 4",
        'UPDATE audit_events SET data = \'{"index": 4, "note": "é"}\' WHERE seq = 4',
        f"UPDATE audit_events SET leaf_hash = '{'00' * 32}' WHERE seq = 4",
    ],
)
def test_any_edited_column_is_found(log: SqlAuditLog, store: Store, statement: str) -> None:
    fill(log, 8)
    tamper(store, statement)
    report = log.verify()
    assert (report.ok, report.first_bad_seq) == (False, 4)
    assert report.reason.endswith("was altered")


def test_a_deleted_middle_row_is_found(log: SqlAuditLog, store: Store) -> None:
    fill(log, 8)
    tamper(store, "DELETE FROM audit_events WHERE seq = 3")
    report = log.verify()
    assert (report.first_bad_seq, report.reason) == (3, "event 3 is missing (removed)")


def test_a_deleted_row_is_found_after_renumbering(log: SqlAuditLog, store: Store) -> None:
    fill(log, 8)
    tamper(
        store,
        "DELETE FROM audit_events WHERE seq = 3",
        "UPDATE audit_events SET seq = -seq WHERE seq > 3",
        "UPDATE audit_events SET seq = -seq - 1 WHERE seq < 0",
    )
    report = log.verify()
    assert (report.first_bad_seq, report.reason) == (
        3,
        "event 3 is missing (removed, later events renumbered)",
    )


def test_two_rows_with_swapped_content_are_found(log: SqlAuditLog, store: Store) -> None:
    fill(log, 8)
    tamper(
        store,
        "UPDATE audit_events SET seq = -3 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 5",
        "UPDATE audit_events SET seq = 5 WHERE seq = -3",
    )
    report = log.verify()
    assert (report.first_bad_seq, report.reason) == (2, "events out of order at 2")


def test_a_forged_row_inserted_in_the_middle_is_found(log: SqlAuditLog, store: Store) -> None:
    fill(log, 8)
    forged = stored_leaf(4, UnknownEvent(kind="run-approved", actor="mallory", payload={}, at=T0))
    tamper(
        store,
        "UPDATE audit_events SET seq = -seq WHERE seq >= 4",
        "UPDATE audit_events SET seq = 1 - seq WHERE seq < 0",
        "INSERT INTO audit_events (seq, name, actor, run_id, at, data, leaf_hash) VALUES "
        f"(4, 'run-approved', 'mallory', '', '{forged.at}', '{{}}', '{forged.leaf_hash}')",
    )
    report = log.verify()
    assert (report.first_bad_seq, report.reason) == (4, "event 4 (run-approved) was inserted")


def test_unreadable_rows_are_reported_when_listed(log: SqlAuditLog, store: Store) -> None:
    fill(log, 3)
    tamper(store, "UPDATE audit_events SET data = '[1]' WHERE seq = 1")
    with pytest.raises(RecordUnreadable, match="audit event 1 cannot be read: .*not a JSON object"):
        log.events()
    tamper(store, "UPDATE audit_events SET at = 'yesterday' WHERE seq = 1")
    with pytest.raises(RecordUnreadable, match="audit event 1"):
        log.events()
    assert log.verify().first_bad_seq == 1


# --- crashes ----------------------------------------------------------------------------

CRASHER = """
import os, sys
from datetime import UTC, datetime
from sqlalchemy.orm import Session
from codefactory.audit.sql import SqlAuditLog
from codefactory.domain import UnknownEvent
from codefactory.store.db import open_engine
engine = open_engine(sys.argv[1])
log = SqlAuditLog(engine)
def event(i):
    return UnknownEvent(kind="engine-step", actor="agent", payload={"i": i}, at=datetime.now(UTC))
for i in range(300):
    log.append(event(i))
session = Session(engine)
session.begin()
for i in range(300):  # completes a cached subtree inside the transaction that never commits
    log.append(event(i), session=session)
print("appended", flush=True)
os._exit(3)  # the process dies before COMMIT, as on a power cut or an OOM kill
"""


def test_a_crash_mid_append_leaves_a_verifiable_log(log: SqlAuditLog, store: Store) -> None:
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHER, store.url], capture_output=True, text=True, timeout=120
    )
    assert crashed.returncode == 3 and "appended" in crashed.stdout, crashed.stderr
    report = log.verify()
    assert (report.ok, report.count) == (True, 300), report.reason
    assert log.append(event(0)) == 300
    assert log.verify().ok


def test_a_writer_killed_while_appending_leaves_a_verifiable_log(sqlite_store: Store) -> None:
    store, log = sqlite_store, SqlAuditLog(sqlite_store.engine)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, store.url, "victim", "100000"])
    deadline = time.monotonic() + 60
    while len(log.events()) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    report = log.verify()
    assert report.ok and report.count >= 50, report.reason


def test_the_latest_checkpoint_is_read_without_signing_and_an_edited_one_is_passed_over(
    log: SqlAuditLog, store: Store
) -> None:
    assert log.latest_checkpoint() is None
    fill(log, 3)
    assert log.latest_checkpoint() is None  # reading signs nothing
    first = log.checkpoint()
    fill(log, 2, start=3)
    assert log.latest_checkpoint() == first  # the log grew: still the stored one
    second = log.checkpoint()
    assert log.latest_checkpoint() == second and second.checkpoint.size == 5
    tamper(store, "UPDATE audit_checkpoints SET root_hash = '00' WHERE size = 5")
    assert log.latest_checkpoint() == first  # a row whose columns disagree is not trusted


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = CAST(actor AS BLOB) WHERE seq = 1",
        "UPDATE audit_events SET name = CAST(name AS BLOB) WHERE seq = 1",
        "UPDATE audit_events SET data = '{\"a\":' || replace(hex(zeroblob(30000)), '00', '[')"
        " || replace(hex(zeroblob(30000)), '00', ']') || '}' WHERE seq = 1",
    ],
    ids=["blob-actor", "blob-name", "nested-past-the-parser"],
)
def test_a_column_verify_cannot_read_is_named_at_its_index_not_a_crash(
    log: SqlAuditLog, store: Store, statement: str
) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("the statements are SQLite's (PostgreSQL's typed columns refuse them)")
    fill(log, 3)
    tamper(store, statement)
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 1, report.reason


def test_a_cached_subtree_the_log_has_not_completed_is_reported(
    log: SqlAuditLog, store: Store
) -> None:
    """A planted cache row would pass unseen and then make the append that completes its
    subtree fail (the unique key) for ever: verify names it now."""
    fill(log, 10)
    assert log.verify().ok
    tamper(
        store, f"INSERT INTO audit_subtrees (level, position, hash) VALUES (8, 0, '{'ab' * 32}')"
    )
    report = log.verify()
    assert not report.ok and "level 8, position 0" in report.reason, report.reason
