"""`runs list` and `runs show` read through `factory.open_store` (issue 15, "CLI start-up"):
the database as `build_factory` opens it (folder 0700, file 0600, migrated to head), the same
runs and reports, no loop or adapter loaded, Alembic only when the schema must move, and an
audit log that refuses writes. Real SQLite, real subprocesses for what a process loads."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codefactory.cli import app
from codefactory.config import load_settings
from codefactory.domain import UnknownEvent
from codefactory.factory import AuditLogReadOnly, build_factory, open_store
from codefactory.runs.report import run_report
from tests.postgres_store import sqlite_store_only

TICKET = Path(__file__).resolve().parents[2] / "src/codefactory/demo_template/tickets/SVC-101.json"

LISTING = """
import json, sys
from codefactory.cli import app
app(["--data-dir", sys.argv[1], "runs", "list", "--json"], standalone_mode=False)
print(json.dumps(sorted(sys.modules)))
"""


def list_in_fresh_process(data_dir: Path) -> tuple[list[object], set[str]]:
    """`runs list --json`'s rows and the modules its process loaded."""
    result = subprocess.run(
        [sys.executable, "-c", LISTING, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "CODEFACTORY_DATA_DIR"},
    )
    *listing, modules = result.stdout.strip().splitlines()
    return json.loads("\n".join(listing)), set(json.loads(modules))


def refused_run(tmp_path: Path) -> str:
    """A run policy refuses at intake (a CI change), through `codefactory trigger`."""
    document = json.loads(TICKET.read_text())
    document["fields"]["labels"] = ["ci"]
    ticket = tmp_path / "ci.json"
    ticket.write_text(json.dumps(document))
    result = CliRunner().invoke(
        app,
        ["--data-dir", str(tmp_path / "data"), "trigger", "--repo", str(tmp_path)]
        + ["--ticket", str(ticket), "--json"],
    )
    assert result.exit_code == 1, result.output
    return str(json.loads(result.stdout)["id"])


@sqlite_store_only  # the SQLite file's mode; a new database migrated by this process
def test_listing_a_new_folder_makes_the_database_and_loads_no_adapter(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rows, modules = list_in_fresh_process(data_dir)
    assert rows == []
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "factory.db").stat().st_mode) == 0o600
    assert "alembic" in modules  # a new database is migrated to head
    for adapter in ("codefactory.runs.loop", "codefactory.identity.services", "httpx"):
        assert adapter not in modules, adapter
    _, again = list_in_fresh_process(data_dir)
    assert "alembic" not in again  # at head: Alembic is not even imported


def test_the_read_store_reports_what_the_factory_reports(tmp_path: Path) -> None:
    run_id = refused_run(tmp_path)
    settings = load_settings(tmp_path / "data")
    read = open_store(settings)
    assert [run.id for run in read.search_runs()] == [run_id]
    assert run_report(read, run_id) == run_report(build_factory(settings).store, run_id)
    assert read.audit_events(run_id)  # the run's events, read from the stored log


def test_the_read_store_refuses_to_write_audited_state(tmp_path: Path) -> None:
    run_id = refused_run(tmp_path)
    read = open_store(load_settings(tmp_path / "data"))
    before = read.audit_events(run_id)
    with pytest.raises(AuditLogReadOnly, match="cannot append note"):
        with read.atomic() as tx:
            tx.append(UnknownEvent(kind="note", actor="cli", run_id=run_id))
    with pytest.raises(AuditLogReadOnly):
        read.append(UnknownEvent(kind="note", actor="cli", run_id=run_id))
    assert read.audit_events(run_id) == before  # nothing half-written
