"""The witness's state: per log origin, the latest checkpoint it cosigned (SQLite, own file).

`locked()` holds SQLite's writer lock (BEGIN IMMEDIATE) from reading the latest size to
storing the new one, so two concurrent requests for the same log cannot both pass the
consistency check against the same old state (c2sp.org/tlog-witness: "check and store
atomically"). The file is created 0600 in the witness's own folder.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

STORE_FILE = "witness.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cosigned (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    cosigned_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Latest:
    """The latest checkpoint the witness cosigned for a log: its size and root hash."""

    size: int
    root: bytes | None


class StoreTransaction:
    """Reads and writes inside one locked transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def latest(self, origin: str) -> Latest:
        """Size 0 (and no root) for a log it never cosigned."""
        row = self._connection.execute(
            "SELECT size, root FROM cosigned WHERE origin = ?", (origin,)
        ).fetchone()
        return Latest(0, None) if row is None else Latest(int(row[0]), bytes(row[1]))

    def save(self, origin: str, size: int, root: bytes, note: str) -> None:
        self._connection.execute(
            "INSERT INTO cosigned (origin, size, root, note, cosigned_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
            "note = excluded.note, cosigned_at = excluded.cosigned_at",
            (origin, size, root, note, datetime.now(UTC).isoformat()),
        )


class WitnessStore:
    """The SQLite file `witness.db` in the witness's folder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / STORE_FILE
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        with self._connect() as connection:
            connection.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        connection.execute("PRAGMA busy_timeout = 10000")
        return connection

    @contextmanager
    def locked(self) -> Iterator[StoreTransaction]:
        """One write transaction; commits when the block ends, rolls back on an exception."""
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield StoreTransaction(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def latest(self, origin: str) -> Latest:
        """The latest cosigned state of `origin` (read outside any lock: for reports only)."""
        connection = self._connect()
        try:
            return StoreTransaction(connection).latest(origin)
        finally:
            connection.close()
