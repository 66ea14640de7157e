"""The suite's SQLite shortcut: a new, empty SQLite store is given the migrated schema by
copying one template database (SQLite's online backup API), not by running every Alembic
migration again.

Migrating an empty file costs some 80 ms of processor time, and a pass of the suite opens
about 800 new stores: the SQLite counterpart of `tests/postgres_store.py`'s template
databases. Each pytest process migrates its template once, with the real `migrate`, the
first time a store is opened; the copy is page for page what the migrations wrote there, and
`migrate` then finds the head revision and does nothing. Only in-process opens take the
shortcut (a spawned `codefactory` migrates as in production), and only for a file with no
table at all: a database at an older revision is migrated by Alembic, as the migration tests
need.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, create_engine, text


class SqliteTemplate:
    """One migrated template per process, copied into new empty SQLite stores."""

    def __init__(self, migrate: Callable[[Engine], None]) -> None:
        self.real_migrate = migrate
        self._folder: Path | None = None
        self._lock = threading.Lock()

    def migrate(self, engine: Engine) -> None:
        """`store.db.migrate`, with an empty SQLite file first given the template's pages."""
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            with self._lock:  # the emptiness check and the copy, as one step in this process
                self._fill_if_empty(engine)
        self.real_migrate(engine)

    def _fill_if_empty(self, engine: Engine) -> None:
        with engine.connect() as connection:
            if connection.execute(text("SELECT count(*) FROM sqlite_master")).scalar():
                return
            connection.rollback()  # the backup needs no transaction open on its target
            target = connection.connection.driver_connection
            assert isinstance(target, sqlite3.Connection)
            source = sqlite3.connect(self._template())
            try:
                source.backup(target)
            finally:
                source.close()

    def _template(self) -> str:
        if self._folder is None:
            folder = Path(tempfile.mkdtemp(prefix="cft-sqlite-"))
            path = folder / "template.db"
            with sqlite3.connect(path) as connection:  # as the store's files are: WAL
                connection.execute("PRAGMA journal_mode=WAL")
            engine = create_engine(f"sqlite:///{path}")
            try:
                self.real_migrate(engine)  # the real one: Alembic
            finally:
                engine.dispose()
            self._folder = folder
        return str(self._folder / "template.db")

    def close(self) -> None:
        """Remove the template."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
