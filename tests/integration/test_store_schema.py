"""The Alembic migrations build exactly the schema the models describe, in WAL mode."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from codefactory.store.db import open_engine, table_names
from codefactory.store.schema import metadata


def test_migrations_match_the_models(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path}/factory.db")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []
    assert {
        "runs",
        "triggers",
        "decisions",
        "findings",
        "packages",
        "reviews",
        "audit_events",
    } <= set(table_names(engine))


def test_sqlite_runs_in_wal_mode_and_migrating_twice_is_harmless(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/factory.db"
    open_engine(url)
    engine = open_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
