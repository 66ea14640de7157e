"""The suite's PostgreSQL switch: `CODEFACTORY_TEST_DATABASE=postgresql` gives every test that
uses the store a fresh, empty PostgreSQL database of its own.

Each pytest process (an xdist worker, or the only one) migrates one template database once;
each store test then gets `CREATE DATABASE … TEMPLATE <template>` (about 50 ms) and sees it
through `CODEFACTORY_DATABASE_URL`, so the factory it builds in-process and every
`codefactory` process it spawns open that database. Databases are dropped when the test
ends, which also ends the server sessions its engines left open (PostgreSQL allows 100).
Names carry the worker's id and the process id: two workers, or two sessions at once, never
collide.

Which tests use the store is decided from their source, not remembered by anyone
(`uses_store`): a test whose module, whose fixtures, or whose `tests.*` helpers (followed
through their imports) name the modules that open the store (`STORE_USE`) or spawn the
`codefactory` command.
"""

from __future__ import annotations

import functools
import os
import queue
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.sqlite_template import SqliteTemplate

TEST_DATABASE_ENV = "CODEFACTORY_TEST_DATABASE"
"""`postgresql` runs store tests on PostgreSQL; unset or `sqlite`: the SQLite file."""
ADMIN_URL_ENV = "CODEFACTORY_TEST_POSTGRES_URL"
ADMIN_URL = os.environ.get(ADMIN_URL_ENV, "postgresql+psycopg://postgres@127.0.0.1:5432/test")
"""A database of the server the tests may create and drop databases on (trust auth)."""
DATABASE_URL_ENV = "CODEFACTORY_DATABASE_URL"

THIS = Path(__file__).resolve()
TESTS = THIS.parent
STORE_USE = re.compile(
    r"\bcodefactory\.(factory|store|cli|commands|audit\.(sql|wiring)|web\.app|dispatch|runs"
    r"|demo)\b"
    r"|\bfrom codefactory import (factory|store|cli|commands|dispatch|runs|demo)\b"
    r'|parent / "codefactory"'
)
"""What, in a test's source, opens the store: the modules that build the factory or open the
database, and the `codefactory` executable next to the interpreter."""
TEST_IMPORT = re.compile(r"^\s*(?:from|import) (tests(?:\.\w+)+)", re.MULTILINE)


def selected() -> str:
    """The database the suite runs its store tests on: `sqlite` or `postgresql`; anything
    else is refused (a typo must not silently test SQLite twice)."""
    value = os.environ.get(TEST_DATABASE_ENV, "sqlite").strip().lower() or "sqlite"
    if value not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"{TEST_DATABASE_ENV}={value!r}: use sqlite or postgresql")
    return value


sqlite_store_only = pytest.mark.skipif(
    selected() != "sqlite", reason="about the SQLite file itself (its mode, its WAL)"
)
"""For a test about the SQLite file of the data folder, meaningless on PostgreSQL."""


@functools.cache
def _file_uses_store(path: Path) -> bool:
    """Whether the Python file at `path`, or a `tests.*` module it imports, opens the store."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError:
        return False
    if STORE_USE.search(source):
        return True
    for module in TEST_IMPORT.findall(source):
        parts = module.split(".")[1:]
        for candidate in (TESTS.joinpath(*parts).with_suffix(".py"), TESTS.joinpath(*parts)):
            target = candidate / "__init__.py" if candidate.is_dir() else candidate
            if target not in (path, THIS) and target.is_file() and _file_uses_store(target):
                return True
    return False


def uses_store(item: pytest.Item) -> bool:
    """Whether the test `item` uses the store: its module, or a fixture it requests, is
    defined in a file that opens the store (`_file_uses_store`)."""
    if _file_uses_store(Path(item.path)):
        return True
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for definitions in info.name2fixturedefs.values():
        for definition in definitions:
            code = getattr(definition.func, "__code__", None)
            origin = Path(code.co_filename) if code is not None else THIS
            if origin != THIS and _file_uses_store(origin):  # this file's are every test's
                return True
    return False


class Databases:
    """Per-process PostgreSQL databases for tests: one migrated template, copies of it."""

    def __init__(self, admin_url: str, prefix: str) -> None:
        self._admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self._base = sa.engine.make_url(admin_url)
        self._prefix = prefix
        self._template = f"{prefix}_template"
        self._count = 0
        self._drops: queue.Queue[str | None] = queue.Queue()
        self._dropper = threading.Thread(target=self._drop_queued, daemon=True)
        self._ready = False

    def url(self, name: str) -> str:
        """The URL of database `name` on the admin URL's server (password shown: tests only)."""
        return self._base.set(database=name).render_as_string(hide_password=False)

    def _ensure_template(self) -> None:
        if self._ready:
            return
        from codefactory.store.db import open_engine

        self._drop_orphans()
        self._execute(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
        self._execute(f'CREATE DATABASE "{self._template}"')
        open_engine(self.url(self._template)).dispose()
        self._dropper.start()
        self._ready = True

    def _drop_orphans(self) -> None:
        """Drop the databases of test processes of this machine that are gone (a session
        killed before its teardown), named `cft_<worker>_<pid>_…`."""
        with self._admin.connect() as connection:
            names = connection.execute(
                sa.text(r"SELECT datname FROM pg_database WHERE datname LIKE 'cft\_%'")
            ).scalars()
            orphans = [n for n in names if not _alive(int(n.split("_")[2]))]
        for name in orphans:
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create(self) -> str:
        """A new database copied from the migrated template; returns its URL."""
        self._ensure_template()
        self._count += 1
        name = f"{self._prefix}_{self._count}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop the database of `url` now, ending the server sessions still open on it."""
        name = sa.engine.make_url(url).database
        assert name is not None and name.startswith(self._prefix)
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_later(self, url: str) -> None:
        """Drop the database of `url` on the background thread (its sessions terminated)."""
        name = sa.engine.make_url(url).database
        assert name is not None and name.startswith(self._prefix)
        self._drops.put(name)

    def _drop_queued(self) -> None:
        while (name := self._drops.get()) is not None:
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Drop every database left, the template last."""
        if self._ready:
            self._drops.put(None)
            self._dropper.join()
            self._execute(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
        self._admin.dispose()

    def _execute(self, statement: str) -> None:
        with self._admin.connect() as connection:
            connection.exec_driver_sql(statement)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_prefix() -> str:
    """Database names of this pytest process: `cft_<xdist worker>_<pid>`."""
    worker = re.sub(r"\W", "", os.environ.get("PYTEST_XDIST_WORKER", "main"))
    return f"cft_{worker}_{os.getpid()}"


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[Databases]:
    """This process's PostgreSQL databases (CODEFACTORY_TEST_DATABASE=postgresql only)."""
    databases = Databases(ADMIN_URL, process_prefix())
    yield databases
    databases.close()


@pytest.fixture(scope="session", autouse=True)
def sqlite_template() -> Iterator[SqliteTemplate]:
    """Every new SQLite store this pytest process opens in-process gets its schema copied
    from one migrated template (tests/sqlite_template.py). Defined here, the one file
    `uses_store` does not read: an autouse fixture in a file that names the store would mark
    every test `store`."""
    from codefactory.store import db

    template = SqliteTemplate(db.migrate)
    db.migrate = template.migrate  # type: ignore[assignment]
    yield template
    db.migrate = template.real_migrate  # type: ignore[assignment]
    template.close()
