"""PostgreSQL as the store (issue 15): `CODEFACTORY_DATABASE_URL` selects it, the migrations
reach head on an empty database, processes starting together migrate once, appends from
several processes number the audit log without a gap, and the URL's password is never shown.

Real PostgreSQL (127.0.0.1:5432, trust auth; `make test` starts it), real processes."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from codefactory.audit.errors import EventNotRecordable
from codefactory.audit.sql import SqlAuditLog
from codefactory.config import Settings, load_settings
from codefactory.domain import UnknownEvent
from codefactory.factory import open_store
from codefactory.store.db import StoreUnavailable, head_revision, open_engine, table_names
from codefactory.store.schema import metadata
from codefactory.store.urls import DatabaseUrlRefused, database_url, shown
from tests.integration.test_audit_migration import alembic, legacy_rows
from tests.postgres_store import ADMIN_URL

CLI = Path(sys.executable).parent / "codefactory"
PASSWORD = "s3cret-Pa55word"


def _admin() -> sa.Engine | None:
    try:
        engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect():
            return engine
    except sa.exc.OperationalError:
        return None


ADMIN = _admin()
needs_postgresql = pytest.mark.skipif(ADMIN is None, reason=f"no PostgreSQL at {ADMIN_URL}")


@pytest.fixture
def empty_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database (no schema at all), dropped afterwards."""
    assert ADMIN is not None
    name = f"cf_empty_{os.getpid()}_{secrets.token_hex(4)}"
    with ADMIN.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with ADMIN.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without a database URL of the suite's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "CODEFACTORY_DATABASE_URL"}
    return env | extra


# -- the setting --------------------------------------------------------------------------


def test_the_default_is_the_sqlite_file_of_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODEFACTORY_DATABASE_URL", raising=False)
    monkeypatch.setenv("CODEFACTORY_DATA_DIR", str(tmp_path / "a"))
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'a' / 'factory.db'}"
    moved = load_settings(data_dir=tmp_path / "b")  # --data-dir: a copy, its own file
    assert moved.database_url == f"sqlite:///{tmp_path / 'b' / 'factory.db'}"


def test_the_url_setting_survives_a_new_data_folder_and_is_never_in_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql+psycopg://factory:{PASSWORD}@db.internal:5432/codefactory"
    monkeypatch.setenv("CODEFACTORY_DATABASE_URL", url)
    settings = load_settings(data_dir=tmp_path)
    assert settings.database_url == url
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)
    again = Settings.model_validate(settings.model_dump())  # `serve --triggers` round trip
    assert again.database_url == url


@needs_postgresql
def test_the_url_selects_postgresql(
    empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEFACTORY_DATABASE_URL", empty_database)
    store = open_store(load_settings(data_dir=tmp_path / "data"))
    assert store.engine.dialect.name == "postgresql"
    assert store.engine.dialect.driver == "psycopg"
    assert store.engine.pool.status().startswith("Pool size: 8 ")
    assert "runs" in table_names(store.engine)
    assert not (tmp_path / "data" / "factory.db").exists()
    store.engine.dispose()


def test_a_bare_postgresql_url_is_given_psycopg_3() -> None:
    assert database_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(DatabaseUrlRefused, match="psycopg2.*psycopg 3") as refused:
        database_url(f"postgresql+psycopg2://u:{PASSWORD}@h/db")
    assert PASSWORD not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "dialect"),
    [
        (f"mysql+pymysql://factory:{PASSWORD}@db.internal/codefactory", "mysql"),
        (f"oracle://factory:{PASSWORD}@db.internal/codefactory", "oracle"),
        ("mssql+pyodbc://db.internal/codefactory", "mssql"),
    ],
)
def test_a_bad_dialect_is_refused_precisely(url: str, dialect: str) -> None:
    with pytest.raises(DatabaseUrlRefused) as refused:
        open_engine(url)
    message = str(refused.value)
    assert f"the dialect {dialect!r}" in message
    assert "sqlite or postgresql only" in message
    assert "CODEFACTORY_DATABASE_URL" in message
    assert PASSWORD not in message


def test_an_unparsable_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(DatabaseUrlRefused, match="not an SQLAlchemy URL") as refused:
        open_engine(PASSWORD)  # a password pasted into the wrong variable
    assert PASSWORD not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    assert shown(PASSWORD) == "<unparsable URL>"


def test_the_cli_refuses_a_bad_dialect_in_one_line(tmp_path: Path) -> None:
    url = f"mysql://factory:{PASSWORD}@db.internal/codefactory"
    result = subprocess.run(
        [str(CLI), "--data-dir", str(tmp_path), "runs", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(CODEFACTORY_DATABASE_URL=url),
    )
    assert result.returncode == 1
    assert "names the dialect 'mysql'" in result.stderr
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


# -- the password -------------------------------------------------------------------------


def test_the_password_never_appears_when_the_server_cannot_be_reached() -> None:
    url = f"postgresql+psycopg://factory:{PASSWORD}@127.0.0.1:1/codefactory"
    with pytest.raises(StoreUnavailable) as unavailable:
        open_engine(url)
    message = str(unavailable.value)
    assert "postgresql+psycopg://factory:***@127.0.0.1:1/codefactory" in message
    assert "Connection refused" in message or "connection failed" in message
    assert PASSWORD not in message
    assert unavailable.value.__cause__ is None  # no chained driver error holding the DSN


def test_the_cli_hides_the_password_when_the_store_is_unreachable(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://factory:{PASSWORD}@127.0.0.1:1/codefactory"
    result = subprocess.run(
        [str(CLI), "--data-dir", str(tmp_path), "runs", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(CODEFACTORY_DATABASE_URL=url),
    )
    assert result.returncode == 1
    assert "factory:***@127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


# -- migrations ---------------------------------------------------------------------------


@needs_postgresql
def test_migrations_reach_head_on_an_empty_database(empty_database: str) -> None:
    engine = open_engine(empty_database)
    with engine.connect() as connection:
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    assert versions == [(head_revision(),)]
    assert set(metadata.tables) <= set(table_names(engine))
    open_engine(empty_database).dispose()  # at head: nothing to do the second time
    engine.dispose()


RACE = """
import logging, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
from codefactory.store.db import open_engine
go = Path(sys.argv[2])
Path(sys.argv[3]).touch()
while not go.exists():
    time.sleep(0.005)
open_engine(sys.argv[1]).dispose()
"""


def at_once(script: str, tmp_path: Path, *args: str, count: int = 2) -> list[str]:
    """Run `count` Python processes of `script` released together (each touches its ready
    file, then waits for the go file); returns each one's stderr, after asserting success."""
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(count)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args, str(go), str(flag)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 60
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=120)
            outputs.append(stdout + stderr)
    finally:
        for process in processes:
            process.kill()
            process.communicate()
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    return outputs


@needs_postgresql
def test_two_processes_migrating_at_once_both_succeed_with_one_schema(
    empty_database: str, tmp_path: Path
) -> None:
    outputs = at_once(RACE, tmp_path, empty_database)
    first_step = [line for o in outputs for line in o.splitlines() if "-> 0001," in line]
    assert len(first_step) == 1, outputs  # one process migrated; the other found the head
    engine = sa.create_engine(empty_database)
    with engine.connect() as connection:
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    assert versions == [(head_revision(),)]
    assert set(metadata.tables) <= set(table_names(engine))
    engine.dispose()


# -- the audit log ------------------------------------------------------------------------

APPENDS = 40
APPEND = """
import os, sys, time
from datetime import UTC, datetime
from pathlib import Path
from codefactory.audit.sql import SqlAuditLog
from codefactory.domain import UnknownEvent
from codefactory.store.db import open_engine
log = SqlAuditLog(open_engine(sys.argv[1]))
go = Path(sys.argv[3])
Path(sys.argv[4]).touch()
while not go.exists():
    time.sleep(0.005)
for i in range(int(sys.argv[2])):
    data = {"writer": os.getpid(), "i": i}
    log.append(UnknownEvent(kind="run-note", actor="factory", payload=data, at=datetime.now(UTC)))
"""


@needs_postgresql
def test_concurrent_appends_from_two_processes_are_gapless_and_verify(
    empty_database: str, tmp_path: Path
) -> None:
    open_engine(empty_database).dispose()  # migrated first: the race is the appends'
    at_once(APPEND, tmp_path, empty_database, str(APPENDS))
    engine = open_engine(empty_database)
    records = SqlAuditLog(engine).events()
    assert [r.seq for r in records] == list(range(2 * APPENDS))
    writers = [r.data["writer"] for r in records]
    assert sorted(writers.count(w) for w in set(writers)) == [APPENDS, APPENDS]
    assert writers != sorted(writers), "the writers never interleaved: no race was run"
    assert SqlAuditLog(engine).verify().ok
    engine.dispose()
    result = subprocess.run(
        [str(CLI), "--data-dir", str(tmp_path / "data"), "audit", "verify", "--offline"]
        + ["--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(CODEFACTORY_DATABASE_URL=empty_database),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["count"] >= 2 * APPENDS


# -- text PostgreSQL cannot hold ----------------------------------------------------------


@needs_postgresql
def test_a_nul_in_text_is_stored_as_the_replacement_character(empty_database: str) -> None:
    """A tool's stderr with a NUL byte (as git's may be) in a run's reason: SQLite keeps it,
    PostgreSQL's text cannot, so the store writes U+FFFD in its place instead of failing."""
    engine = open_engine(empty_database)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TEMPORARY TABLE said (reason text)"))
        connection.execute(sa.text("INSERT INTO said VALUES (:r)"), {"r": "fatal:\x00 bad pack"})
        connection.execute(sa.text("INSERT INTO said VALUES (:r)"), [{"r": "a\x00"}, {"r": "b"}])
        said = sa.Table("said", sa.MetaData(), sa.Column("reason", sa.Text))
        returned = connection.execute(  # batched "insertmanyvalues": one mapping per batch
            sa.insert(said).returning(said.c.reason), [{"reason": "c\x00"}, {"reason": "d"}]
        )
        assert sorted(returned.scalars()) == ["c\ufffd", "d"]
        stored = connection.execute(sa.text("SELECT reason FROM said")).scalars().all()
    assert stored == ["fatal:\ufffd bad pack", "a\ufffd", "b", "c\ufffd", "d"]
    engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_an_audit_event_holding_a_nul_is_refused_on_either_database(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Its hashed columns are stored as they are hashed: a NUL, which PostgreSQL would not
    store, is refused on both, precisely, and nothing is appended."""
    if dialect == "postgresql":
        if ADMIN is None:
            pytest.skip(f"no PostgreSQL at {ADMIN_URL}")
        url = request.getfixturevalue("empty_database")
    else:
        url = f"sqlite:///{tmp_path / 'f.db'}"
    engine = open_engine(url)
    log = SqlAuditLog(engine)
    event = UnknownEvent(kind="run-note", actor="user:a\x00b", at=datetime.now(UTC))
    with pytest.raises(EventNotRecordable, match="actor holds a NUL character"):
        log.append(event)
    assert log.events() == []
    engine.dispose()


# -- migrations that carry data -----------------------------------------------------------


@needs_postgresql
def test_the_audit_data_migration_runs_up_and_down_on_postgresql(empty_database: str) -> None:
    """Revision 0002's hash chain becomes the Merkle log (0003+) and back, as on SQLite
    (tests/integration/test_audit_migration.py), then every revision down and up again."""
    engine = sa.create_engine(database_url(empty_database))
    alembic(engine, "upgrade", "0002")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO audit_events VALUES "
                "(:seq, :name, :actor, :run_id, :at, :data, :prev_hash, :hash)"
            ),
            legacy_rows(300),
        )
    migrated = open_engine(empty_database)
    report = SqlAuditLog(migrated).verify()
    assert (report.ok, report.count) == (True, 300), report.reason
    migrated.dispose()
    alembic(engine, "downgrade", "0002")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM audit_events ORDER BY seq")).mappings()
        assert [dict(row) for row in rows] == legacy_rows(300)
    alembic(engine, "downgrade", "base")
    alembic(engine, "upgrade", "head")
    with engine.connect() as connection:
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
        assert version.scalar_one() == head_revision()
    engine.dispose()
