"""Open the store: an SQLAlchemy engine (SQLite in WAL mode by default, or PostgreSQL through
psycopg 3) at the latest schema."""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from codefactory.store.urls import database_url, shown

MIGRATIONS = Path(__file__).parent / "migrations"


def stored_text(stored: bytes) -> str:
    """A SQLite text value as `str`, a byte that is not UTF-8 kept as a lone surrogate
    (`surrogateescape`): the file edited by hand makes that value fail wherever it is checked
    or written again (it cannot be encoded), not every read that meets it."""
    return stored.decode("utf-8", "surrogateescape")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.text_factory = stored_text
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


SQLITE_FILE_MODE = 0o600
"""The database and its `-wal`/`-shm` files: the factory's alone, never world-readable."""


POOL_SIZE = 8
"""PostgreSQL connections an engine keeps open: `serve`'s request threads and dispatch
workers each hold one while they work; `MAX_OVERFLOW` more are opened for bursts."""
MAX_OVERFLOW = 8
POOL_TIMEOUT_S = 30.0
"""Seconds a thread waits for a free connection before the pool raises TimeoutError."""
CONNECT_TIMEOUT_S = 10
"""Seconds psycopg waits for the server to answer before the open fails."""

MIGRATION_LOCK_KEY = 0x636F_6465_6D69_6772  # "codemigr"
"""Key of the PostgreSQL session-level advisory lock held while migrating, so processes
starting together (serve and its workers) migrate one after the other: the first upgrades,
the others find the head and do nothing. Distinct from the audit log's append lock."""


class StoreUnavailable(RuntimeError):
    """The store's database cannot be reached or migrated; the message shows the URL
    without its password."""


def open_engine(url: str) -> Engine:
    """An engine for `url` (an SQLAlchemy URL, `store.urls.database_url`), migrated to the
    newest schema (Alembic `upgrade head`).

    SQLite: the file and its WAL and shared-memory files are made (or tightened to) mode 0600.
    PostgreSQL (psycopg 3): a pool of `POOL_SIZE` (+`MAX_OVERFLOW`) connections checked with a
    ping before use; migrations run under an advisory lock (`MIGRATION_LOCK_KEY`).
    Raises DatabaseUrlRefused for a URL of another dialect and StoreUnavailable when the
    server cannot be reached; neither message holds the URL's password.
    """
    parsed = database_url(url)
    if parsed.get_backend_name() == "postgresql":
        return _open_postgresql(parsed)
    database: Path | None = None
    if parsed.database not in (None, "", ":memory:"):
        database = Path(parsed.database)
        database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _private_file(database)
    engine = create_engine(parsed)
    event.listen(engine, "connect", _sqlite_pragmas)
    migrate(engine)
    if database is not None:
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            _private_file(path, create=False)
    return engine


def _open_postgresql(url: URL) -> Engine:
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_S,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )
    _close_pool_with(engine)
    event.listen(engine, "before_cursor_execute", _without_nul, retval=True)
    event.listen(engine, "engine_disposed", _close_pool_with)  # dispose() makes a new pool
    try:
        migrate(engine)
    except OperationalError as error:
        engine.dispose()
        reason = str(error.orig).strip() if error.orig is not None else type(error).__name__
        raise StoreUnavailable(f"cannot reach {shown(url)}: {reason}") from None
    return engine


NUL_STAND_IN = "\ufffd"
"""What a NUL character in a text parameter becomes on PostgreSQL, whose text columns cannot
hold U+0000 (psycopg raises DataError): U+FFFD, the Unicode replacement character. Text from
outside (a tool's stderr in a run's reason) may carry one; the audit log refuses one in its
hashed columns instead (audit/sql.py), and its JSON data escapes it."""


def _without_nul(
    _connection: Any,
    _cursor: Any,
    statement: str,
    parameters: Any,
    _context: Any,
    _executemany: bool,
) -> tuple[str, Any]:
    """`before_cursor_execute` on PostgreSQL: NUL characters in text parameters replaced.
    The shape of `parameters` decides, not the executemany flag (SQLAlchemy's batched
    "insertmanyvalues" passes one mapping with the flag set): a mapping or a positional
    tuple is one row; a list of them is many."""
    if isinstance(parameters, list) and all(
        isinstance(row, (Mapping, list, tuple)) for row in parameters
    ):
        return statement, [_nul_free(row) for row in parameters]
    return statement, _nul_free(parameters)


def _nul_free(parameters: Any) -> Any:
    if isinstance(parameters, Mapping):
        if any(isinstance(v, str) and "\x00" in v for v in parameters.values()):
            return {k: _replace_nul(v) for k, v in parameters.items()}
        return parameters
    if isinstance(parameters, (list, tuple)):
        if any(isinstance(v, str) and "\x00" in v for v in parameters):
            return type(parameters)(_replace_nul(v) for v in parameters)
    return parameters


def _replace_nul(value: Any) -> Any:
    return value.replace("\x00", NUL_STAND_IN) if isinstance(value, str) else value


def _close_pool_with(engine: Engine) -> None:
    """Close the connections `engine`'s pool holds when the engine is collected (a factory
    dropped without `dispose()`, as a command's often is) or the process exits: the server
    gets a clean goodbye and psycopg no ResourceWarning. The finalizer holds the pool, never
    the engine."""
    weakref.finalize(engine, engine.pool.dispose)


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
    when the database is already there).

    On PostgreSQL the upgrade runs under a session-level advisory lock taken on its own
    connection (`pg_advisory_lock(MIGRATION_LOCK_KEY)`), and the revision is read again
    once the lock is held: of several processes starting at once, one migrates and the
    others wait, then find the head. SQLite's write lock serializes the upgrade's single
    transaction the same way."""
    if _current_revision(engine) == head_revision():
        return
    if engine.dialect.name != "postgresql":
        with engine.begin() as connection:
            _upgrade(connection)
        return
    with engine.connect() as locker:
        locker.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            locker.commit()  # the lock is the session's; the migration has its own transaction
            if _current_revision(engine) != head_revision():
                with engine.begin() as connection:
                    _upgrade(connection)
        finally:
            locker.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            locker.commit()


def _upgrade(connection: Connection) -> None:
    from alembic import command  # 0.3 s of imports: only when migrating
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def table_names(engine: Engine) -> list[str]:
    """The tables the store holds, for diagnostics."""
    return sorted(inspect(engine).get_table_names())
