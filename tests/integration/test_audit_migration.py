"""Migration 0003 turns a hash-chained log into the Merkle log, and refuses a tampered one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text

from codefactory.audit.sql import SqlAuditLog
from codefactory.store.db import MIGRATIONS, open_engine


def alembic(engine: Engine, verb: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, verb)(config, revision)


def legacy_rows(n: int) -> list[dict[str, object]]:
    """Rows as revision 0002 stored them: seq from 1, each linked to the previous hash."""
    rows, previous = [], "0" * 64
    for seq in range(1, n + 1):
        record = {
            "actor": "factory",
            "at": f"2025-03-01T09:30:00.{seq:06d}Z",
            "data": {"n": seq, "note": "é"},
            "name": "run-state-changed",
            "run_id": "r-1",
            "seq": seq,
        }
        canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        link = hashlib.sha256(bytes.fromhex(previous) + canonical.encode()).hexdigest()
        data = json.dumps(record["data"], separators=(",", ":"), ensure_ascii=False)
        rows.append({**record, "data": data, "prev_hash": previous, "hash": link})
        previous = link
    return rows


def legacy_database(path: Path, n: int) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    alembic(engine, "upgrade", "0002")
    with engine.begin() as connection:
        for row in legacy_rows(n):
            connection.execute(
                text(
                    "INSERT INTO audit_events VALUES "
                    "(:seq, :name, :actor, :run_id, :at, :data, :prev_hash, :hash)"
                ),
                row,
            )
    return engine


def test_a_legacy_chain_becomes_a_merkle_log_and_back(tmp_path: Path) -> None:
    legacy = legacy_database(tmp_path / "f.db", 300)
    legacy.dispose()
    engine = open_engine(f"sqlite:///{tmp_path / 'f.db'}")
    log = SqlAuditLog(engine)
    records = log.events()
    assert [r.seq for r in records] == list(range(300))
    assert records[0].data == {"n": 1, "note": "é"}
    report = log.verify()
    assert (report.ok, report.count) == (True, 300), report.reason
    with engine.connect() as connection:
        assert connection.execute(text("SELECT level, position FROM audit_subtrees")).all() == [
            (8, 0)
        ]
        assert (
            connection.execute(text("SELECT origin FROM audit_log"))
            .scalar_one()
            .startswith("codefactory.invalid/audit/")
        )
    alembic(engine, "downgrade", "0002")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM audit_events ORDER BY seq")).mappings().all()
    assert [dict(row) for row in rows] == legacy_rows(300)


def test_a_tampered_legacy_chain_is_not_converted(tmp_path: Path) -> None:
    engine = legacy_database(tmp_path / "f.db", 5)
    with engine.begin() as connection:
        connection.exec_driver_sql("""UPDATE audit_events SET data = '{"n":9}' WHERE seq = 3""")
    with pytest.raises(RuntimeError, match="fails its hash chain at seq 3"):
        alembic(engine, "upgrade", "head")
