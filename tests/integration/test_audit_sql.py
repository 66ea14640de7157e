"""The audit log in a real SQLite store: appends, atomic commits, concurrency, tampering."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from codefactory.audit import AuditRecord, EventNotRecordable, RecordUnreadable
from codefactory.audit.chain import GENESIS_HASH
from codefactory.audit.sql import SqlAuditLog
from codefactory.domain import AuditEvent
from codefactory.store.db import open_engine
from codefactory.store.models import AuditEventRow, TriggerRow

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
NAMES = ["trigger-received", "run-authorized", "run-state-changed", "check-finished"]


def event(index: int, run_id: str = "run-1") -> AuditEvent:
    return AuditEvent(
        name=NAMES[index % len(NAMES)],
        actor="factory",
        run_id=run_id,
        data={"index": index, "note": "é"},
        at=T0 + timedelta(seconds=index),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "f.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    engine = open_engine(f"sqlite:///{db_path}")
    yield engine
    engine.dispose()


@pytest.fixture
def log(engine: Engine) -> SqlAuditLog:
    return SqlAuditLog(engine)


def fill(log: SqlAuditLog, n: int) -> None:
    for i in range(n):
        log.append(event(i, run_id=f"run-{i % 2}"))


def tamper(db_path: Path, *statements: str) -> None:
    """Edit the file by hand, as someone with write access to it would."""
    connection = sqlite3.connect(db_path)
    with connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()


def test_appends_number_events_from_one_and_chain_them(log: SqlAuditLog) -> None:
    assert [log.append(event(i)) for i in range(3)] == [1, 2, 3]
    records = log.events()
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0] == AuditRecord(
        seq=1,
        name="trigger-received",
        actor="factory",
        run_id="run-1",
        at=T0,
        data={"index": 0, "note": "é"},
        hash=records[0].hash,
    )
    report = log.verify()
    assert (report.ok, report.count, report.head_hash) == (True, 3, records[-1].hash)


def test_an_empty_log_verifies(log: SqlAuditLog) -> None:
    assert log.verify().ok
    assert log.verify().head_hash == GENESIS_HASH
    assert log.events() == []


def test_events_of_one_run(log: SqlAuditLog) -> None:
    fill(log, 6)
    assert [r.seq for r in log.events("run-1")] == [2, 4, 6]
    assert log.events("run-7") == []


def test_stored_row_holds_canonical_data_and_utc_time(log: SqlAuditLog, engine: Engine) -> None:
    log.append(
        AuditEvent(
            name="run-refused",
            actor="factory",
            data={"b": 1.0, "a": ["x"]},
            at=datetime(2025, 3, 1, 10, 30, tzinfo=UTC).astimezone(),
        )
    )
    with Session(engine) as session:
        row = session.scalars(select(AuditEventRow)).one()
    assert (row.data, row.at, row.prev_hash) == (
        '{"a":["x"],"b":1}',
        "2025-03-01T10:30:00.000000Z",
        GENESIS_HASH,
    )


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
    log: SqlAuditLog, engine: Engine
) -> None:
    with Session(engine) as session:
        session.add(trigger("t-1"))
        assert log.append(event(0), session=session) == 1
        assert log.append(event(1), session=session) == 2
        session.rollback()
    assert log.events() == []
    with Session(engine) as session, session.begin():
        assert session.get(TriggerRow, "t-1") is None
        session.add(trigger("t-2"))
        log.append(event(0), session=session)
    with Session(engine) as session:
        assert session.get(TriggerRow, "t-2") is not None
    assert [r.seq for r in log.events()] == [1]
    assert log.verify().ok


def test_append_joins_a_transaction_that_already_wrote(log: SqlAuditLog, engine: Engine) -> None:
    fill(log, 2)
    with Session(engine) as session, session.begin():
        session.add(trigger("t-1"))
        session.flush()  # the session's transaction now holds SQLite's writer lock
        assert log.append(event(2), session=session) == 3
    assert log.verify().ok


@pytest.mark.parametrize(
    ("event_", "message"),
    [
        (AuditEvent(name="Run_Refused", actor="f", at=T0), "kebab-case"),
        (AuditEvent(name="run-refused", actor="f" * 257, at=T0), "actor is longer than 256"),
        (AuditEvent(name="run-refused", actor="f", run_id="r" * 65, at=T0), "run_id is longer"),
        (AuditEvent(name="run-refused", actor="f", at=datetime(2025, 1, 1)), "no time zone"),
        (AuditEvent(name="run-refused", actor="f", data={"x": float("nan")}, at=T0), "nan"),
        (AuditEvent(name="run-refused", actor="f", data={"x": {1, 2}}, at=T0), "set has no JSON"),
    ],
)
def test_events_that_cannot_be_recorded_are_refused(
    log: SqlAuditLog, event_: AuditEvent, message: str
) -> None:
    with pytest.raises(EventNotRecordable, match=message):
        log.append(event_)
    assert log.events() == []


def test_concurrent_threads_keep_one_chain(log: SqlAuditLog) -> None:
    errors: list[BaseException] = []

    def worker(thread: int) -> None:
        try:
            for i in range(25):
                log.append(event(i, run_id=f"thread-{thread}"))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [r.seq for r in log.events()] == list(range(1, 201))
    report = log.verify()
    assert (report.ok, report.count) == (True, 200)


WRITER = """
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from codefactory.audit.sql import SqlAuditLog
from codefactory.domain import AuditEvent
from codefactory.store.db import open_engine
log = SqlAuditLog(open_engine(sys.argv[1]))
for i in range(25):
    log.append(AuditEvent(name="run-state-changed", actor=sys.argv[2], data={"i": i},
                          at=datetime.now(UTC)))
"""


def test_concurrent_processes_keep_one_chain(log: SqlAuditLog, db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, f"process-{p}"]) for p in range(4)
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0, 0]
    assert [r.seq for r in log.events()] == list(range(1, 101))
    assert log.verify().ok


# --- tampering with the file by hand ---------------------------------------------------


def test_an_edited_row_is_named_by_verify(log: SqlAuditLog, db_path: Path) -> None:
    fill(log, 8)
    tamper(db_path, """UPDATE audit_events SET data = '{"x":1}' WHERE seq = 5""")
    report = log.verify()
    assert not report.ok
    assert (report.first_bad_seq, report.first_bad_name) == (5, "trigger-received")
    assert report.reason == "event 5 (trigger-received) was altered"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET name = 'run-approved' WHERE seq = 5",
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 5",
        "UPDATE audit_events SET run_id = 'run-9' WHERE seq = 5",
        "UPDATE audit_events SET at = '2025-03-01T09:30:04.000001Z' WHERE seq = 5",
        'UPDATE audit_events SET data = \'{"index": 4, "note": "é"}\' WHERE seq = 5',
    ],
)
def test_any_edited_column_is_found(log: SqlAuditLog, db_path: Path, statement: str) -> None:
    fill(log, 8)
    tamper(db_path, statement)
    report = log.verify()
    assert (report.ok, report.first_bad_seq) == (False, 5)
    assert report.reason.endswith("was altered")


def test_a_deleted_middle_row_is_found(log: SqlAuditLog, db_path: Path) -> None:
    fill(log, 8)
    tamper(db_path, "DELETE FROM audit_events WHERE seq = 4")
    report = log.verify()
    assert (report.first_bad_seq, report.reason) == (4, "event 4 is missing (removed)")


def test_a_deleted_row_is_found_after_renumbering(log: SqlAuditLog, db_path: Path) -> None:
    fill(log, 8)
    tamper(
        db_path,
        "DELETE FROM audit_events WHERE seq = 4",
        "UPDATE audit_events SET seq = seq - 1 WHERE seq > 4",
    )
    assert log.verify().first_bad_seq == 4


def test_two_rows_with_swapped_content_are_found(log: SqlAuditLog, db_path: Path) -> None:
    fill(log, 8)
    tamper(
        db_path,
        "UPDATE audit_events SET seq = -3 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 6",
        "UPDATE audit_events SET seq = 6 WHERE seq = -3",
    )
    report = log.verify()
    assert (report.first_bad_seq, report.reason) == (3, "events out of order at 3")


def test_a_forged_row_inserted_in_the_middle_is_found(log: SqlAuditLog, db_path: Path) -> None:
    fill(log, 8)
    # A forger who links the row properly to event 4 and renumbers the rest.
    forged = SqlAuditLog(open_engine(f"sqlite:///{db_path.with_name('scratch.db')}"))
    fill(forged, 4)
    approval = AuditEvent(name="run-approved", actor="mallory", data={}, at=T0)
    forged.append(approval)
    row = forged.events()[-1]
    assert log.events()[3].hash == forged.events()[3].hash
    tamper(
        db_path,
        "UPDATE audit_events SET seq = seq + 100 WHERE seq > 4",
        "UPDATE audit_events SET seq = seq - 99 WHERE seq > 100",
        "INSERT INTO audit_events VALUES (5, 'run-approved', 'mallory', '', "
        f"'2025-03-01T09:30:00.000000Z', '{{}}', '{forged.events()[3].hash}', '{row.hash}')",
    )
    report = log.verify()
    assert (report.first_bad_seq, report.reason) == (5, "event 5 (run-approved) was inserted")


def test_unreadable_rows_are_reported_when_listed(log: SqlAuditLog, db_path: Path) -> None:
    fill(log, 3)
    tamper(db_path, "UPDATE audit_events SET data = '[1]' WHERE seq = 2")
    with pytest.raises(RecordUnreadable, match="audit event 2 cannot be read: .*not a JSON object"):
        log.events()
    tamper(db_path, "UPDATE audit_events SET at = 'yesterday' WHERE seq = 2")
    with pytest.raises(RecordUnreadable, match="audit event 2"):
        log.events()
    assert log.verify().first_bad_seq == 2
