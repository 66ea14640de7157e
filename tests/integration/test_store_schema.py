"""The Alembic migrations build exactly the schema the models describe, in WAL mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError

from codefactory.store.db import MIGRATIONS, StoreUnavailable, open_engine, table_names
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


def upgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_a_body_stored_twice_stops_the_migration_that_makes_bodies_unique(
    tmp_path: Path,
) -> None:
    """Migration 0012 makes `(source, payload_digest)` unique. A database where a race
    between two `serve` processes stored one body twice is left as it was, the copies named;
    once a person removed one, the upgrade goes through and the database refuses a third."""
    engine = create_engine(f"sqlite:///{tmp_path}/factory.db")
    upgrade(engine, "0011")
    row = ("INSERT INTO deliveries (source, delivery_id, event, status, reason, payload_digest,"
           " received_at, updated_at) VALUES ('github', :id, 'issues', 'done', '', :digest,"
           " '2026-11-30 10:00:00', '2026-11-30 10:00:00')")  # fmt: skip
    with engine.begin() as connection:
        for delivery_id, digest in (
            ("d-1", "sha256:aa"),
            ("d-2", "sha256:aa"),
            ("d-3", "sha256:bb"),
        ):
            connection.execute(text(row), {"id": delivery_id, "digest": digest})
    with pytest.raises(
        StoreUnavailable,
        match=r"1 body is stored more than once .*: github sha256:aa \(2 rows\)\. Nothing was",
    ):
        upgrade(engine, "head")
    with engine.connect() as connection:
        assert (
            connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0011"
        )
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM deliveries WHERE delivery_id = 'd-2'"))
    upgrade(engine, "head")
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text(row), {"id": "d-4", "digest": "sha256:aa"})
