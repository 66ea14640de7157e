"""Migration 0007: runs stored by checkout path get the canonical id `local:<path>` and
keep the path apart; a refused delivery's unmapped remote name is left as it was."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from codefactory.audit.sql import SqlAuditLog
from codefactory.domain import RunState
from codefactory.store.db import migrate
from codefactory.store.runs import RunStore
from tests.integration.test_audit_migration import alembic

AT = "2025-03-01 09:30:00.000000"


def database_at_0006(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    alembic(engine, "upgrade", "0006")
    with engine.begin() as db:
        for run_id, repository in (("r-1", "/srv/repos/itsdangerous"), ("r-2", "acme/elsewhere")):
            db.execute(
                text(
                    "INSERT INTO triggers VALUES (:id, 'cli', 'fix_lint', 'SVC-1', 'priya', "
                    ":repository, 'Fix lint', '', '[]', 'sha256:00', :at)"
                ),
                {"id": f"t-{run_id}", "repository": repository, "at": AT},
            )
            db.execute(
                text(
                    "INSERT INTO runs VALUES (:id, :trigger, 'fix_lint', :repository, 'priya', "
                    "'agent:x', 'handed_off', '', '', '', '', '', :at, 'recipe:lint-fix')"
                ),
                {"id": run_id, "trigger": f"t-{run_id}", "repository": repository, "at": AT},
            )
    return engine


def test_migration_0007_names_old_runs_by_id_and_keeps_their_checkout(tmp_path: Path) -> None:
    engine = database_at_0006(tmp_path / "factory.db")
    migrate(engine)
    store = RunStore(engine, SqlAuditLog(engine))
    old = store.require_run("r-1")
    assert (old.repository, old.repository_path) == (
        "local:/srv/repos/itsdangerous",
        "/srv/repos/itsdangerous",
    )
    assert old.state is RunState.HANDED_OFF
    trigger = store.get_trigger(old.trigger_id)
    assert trigger is not None and trigger.repository == "local:/srv/repos/itsdangerous"
    unmapped = store.require_run("r-2")
    assert (unmapped.repository, unmapped.repository_path) == ("acme/elsewhere", "")
    assert [r.id for r in store.search_runs(repository="local:/srv/repos/itsdangerous")] == ["r-1"]

    alembic(engine, "downgrade", "0006")
    with engine.connect() as db:
        rows = db.execute(text("SELECT id, repository FROM runs ORDER BY id")).all()
        triggers = db.execute(text("SELECT repository FROM triggers ORDER BY id")).scalars()
        assert [tuple(row) for row in rows] == [
            ("r-1", "/srv/repos/itsdangerous"),
            ("r-2", "acme/elsewhere"),
        ]
        assert list(triggers) == ["/srv/repos/itsdangerous", "acme/elsewhere"]
