"""Open the store: an SQLAlchemy engine (SQLite in WAL mode by default) at the latest schema."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import SQLAlchemyError

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


SQLITE_FILE_MODE = 0o600
"""The database and its `-wal`/`-shm` files: the factory's alone, never world-readable."""


def open_engine(url: str) -> Engine:
    """An engine for `url`, migrated to the newest schema (Alembic `upgrade head`); an SQLite
    file and its WAL and shared-memory files are made (or tightened to) mode 0600."""
    database: Path | None = None
    if url.startswith("sqlite:///") and url.removeprefix("sqlite:///") not in ("", ":memory:"):
        database = Path(url.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _private_file(database)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    migrate(engine)
    if database is not None:
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            _private_file(path, create=False)
    return engine


def _private_file(path: Path, *, create: bool = True) -> None:
    """Create `path` 0600 before SQLite opens it (whatever the umask), or tighten it."""
    if create and not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, SQLITE_FILE_MODE))
    if path.exists():
        path.chmod(SQLITE_FILE_MODE)


_REVISION = re.compile(r'^(down_)?revision\b[^=]*=\s*(?:"([^"]*)"|None)', re.MULTILINE)


@cache
def head_revision() -> str:
    """The newest revision of the shipped migrations: the one no other names as its
    `down_revision` (read from the files' text; Alembic is imported only to migrate)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        for down, value in _REVISION.findall(script.read_text(encoding="utf-8")):
            if value:
                (parents if down else revisions).add(value)
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def _current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:  # no such table yet: a new database
        return None


def migrate(engine: Engine) -> None:
    """Bring the schema to Alembic's head revision (nothing to do, and Alembic not loaded,
    when the database is already there)."""
    if _current_revision(engine) == head_revision():
        return
    from alembic import command  # 0.3 s of imports: only when migrating
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def table_names(engine: Engine) -> list[str]:
    """The tables the store holds, for diagnostics."""
    return sorted(inspect(engine).get_table_names())
