"""An insider's hand on the factory's database, whichever it is: what tests used to do with
`sqlite3.connect(data_dir / "factory.db")`, on the database the factory of `data_dir` opens
(the SQLite file, or the PostgreSQL database `CODEFACTORY_DATABASE_URL` names)."""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from codefactory.config import load_settings
from codefactory.store.urls import database_url


def store_engine(data_dir: Path | str) -> sa.Engine:
    """A bare engine on the database of the factory at `data_dir` (no migration, no pragma),
    or at a factory's `settings.database_url` (a `str`: for a factory built before the test's
    database was chosen, by a fixture of a wider scope): writes through it go below the
    factory, as an insider's would."""
    url = data_dir if isinstance(data_dir, str) else load_settings(data_dir=data_dir).database_url
    engine = sa.create_engine(database_url(url))
    weakref.finalize(engine, engine.pool.dispose)  # callers need not dispose it
    return engine


class StoreSql:
    """`sqlite3.Connection.execute` over SQLAlchemy: `?` placeholders, one transaction."""

    def __init__(self, connection: sa.Connection) -> None:
        self._connection = connection

    def execute(self, statement: str, parameters: Sequence[Any] = ()) -> sa.CursorResult[Any]:
        """Run `statement`, its `?` bound to `parameters` in order; returns the result."""
        escaped = statement.replace(":", r"\:")  # JSON literals hold colons, not binds
        numbers = iter(range(len(parameters)))
        text = re.sub(r"\?", lambda _: f":p{next(numbers)}", escaped)
        binds = {f"p{i}": value for i, value in enumerate(parameters)}
        return self._connection.execute(sa.text(text), binds)


@contextmanager
def store_sql(data_dir: Path | str) -> Iterator[StoreSql]:
    """Statements on the database of the factory at `data_dir` (or at a `database_url`, as
    `store_engine` takes), committed at the end."""
    engine = store_engine(data_dir)
    try:
        with engine.begin() as connection:
            yield StoreSql(connection)
    finally:
        engine.dispose()
