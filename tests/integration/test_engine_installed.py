"""The loop runs the engine the registry cleared and policy saw, never another: an engine
installed under the run's kind (as a loop built by hand may key its recipes) is taken only
when it bears the run's engine name; a run authorized earlier is checked again when a worker
picks it up (its row against its run-created event, its engine against the registry now)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from codefactory.audit.events import EngineProposed, EngineRefused, typed
from codefactory.config import Settings
from codefactory.dispatch.service import build_dispatch
from codefactory.domain import ChangeKind, Run, RunState
from codefactory.engines.registry import default_registry_path, parse_registry
from codefactory.factory import Factory, build_factory
from codefactory.runs.loop import RunFailed, RunLoop
from codefactory.runs.sessions import RegistryClearance
from codefactory.web.app import create_app
from tests.fixtures.webhooks.signed import headers
from tests.integration.test_webhooks import labeled, post, sample_repo, settings_for
from tests.store_sql import store_sql
from tests.unit.test_runs_wrappers import a_run as a_lint_run


def a_run(engine: str) -> Run:
    return replace(a_lint_run(), engine=engine)


@pytest.fixture
def loop(tmp_path: Path) -> RunLoop:
    """The factory's loop, its lint recipe also installed under the kind's name."""
    loop = build_factory(Settings(data_dir=tmp_path / "data")).loop
    loop.engines = {**loop.engines, ChangeKind.FIX_LINT.value: loop.engines["recipe:lint-fix"]}
    return loop


def test_an_engine_is_found_by_its_name_or_under_its_kind(loop: RunLoop) -> None:
    recipe = loop.engines["recipe:lint-fix"]
    assert loop.engine_for(a_run("recipe:lint-fix")) is recipe
    del loop.engines["recipe:lint-fix"]  # type: ignore[attr-defined]
    assert loop.engine_for(a_run("recipe:lint-fix")) is recipe  # under the kind, same name


def test_a_cleared_engine_not_installed_is_never_swapped_for_the_kind_s(loop: RunLoop) -> None:
    with pytest.raises(RunFailed, match="agent:cleared-but-absent is not installed"):
        loop.engine_for(a_run("agent:cleared-but-absent"))


def authorized_run(tmp_path: Path, settings: Settings | None = None) -> tuple[Factory, str]:
    """A lint run authorized at intake (a signed GitHub `issues` webhook), left for a worker."""
    factory = build_factory(settings or settings_for(tmp_path, sample_repo(tmp_path)))
    app = create_app(factory, build_dispatch(factory, workers=0))
    body = labeled()
    receipt = post(app, "/webhooks/github", body, headers("github", body, event="issues")).json()
    assert receipt["state"] == "authorized", receipt
    return factory, receipt["run_id"]


def proposals(factory: Factory, run_id: str) -> list[str]:
    return [
        e.engine for e in map(typed, factory.audit.events(run_id)) if isinstance(e, EngineProposed)
    ]


def test_a_run_whose_row_names_another_engine_is_failed_before_any_engine_runs(
    tmp_path: Path, bwrap_available: None
) -> None:
    """An insider edits an authorized run's row to another engine (not the audit log): the
    worker that picks it up reads the run-created event and fails the run."""
    factory, run_id = authorized_run(tmp_path)
    with store_sql(factory.settings.database_url) as db:
        db.execute("UPDATE runs SET engine = 'recipe:dependency-bump' WHERE id = ?", [run_id])
    done = factory.loop.execute(run_id)
    assert done.state is RunState.FAILED
    assert "edited outside the factory" in done.reason and "recipe:lint-fix" in done.reason
    assert proposals(factory, run_id) == []


def test_an_engine_suspended_after_authorization_never_runs(
    tmp_path: Path, bwrap_available: None
) -> None:
    """The registry suspends the run's engine between intake and the worker: the worker asks
    the registry again, audits the refusal and fails the run; no round starts."""
    factory, run_id = authorized_run(tmp_path)
    shipped = default_registry_path().read_text()
    entry = shipped.index('name = "recipe:lint-fix"')
    suspended = shipped[:entry] + shipped[entry:].replace(
        'status = "active"', 'status = "suspended"', 1
    )
    factory.loop.clearance = RegistryClearance(parse_registry(suspended))
    done = factory.loop.execute(run_id)
    assert done.state is RunState.FAILED
    assert done.reason.startswith("the engine registry no longer clears recipe:lint-fix"), (
        done.reason
    )
    refused = [e for e in map(typed, factory.audit.events(run_id)) if isinstance(e, EngineRefused)]
    assert [e.engine for e in refused] == ["recipe:lint-fix"]
    assert proposals(factory, run_id) == []
    assert factory.audit.verify().ok


def test_a_run_authorized_without_an_engine_is_not_given_one_by_a_worker(
    tmp_path: Path, bwrap_available: None
) -> None:
    """Intake named no engine (no default for the kind in its settings), so neither the
    registry nor policy judged one; a worker whose settings name a default must not run it."""
    settings = settings_for(tmp_path, sample_repo(tmp_path))
    settings.engines.defaults = {"general_change": "agent:pydantic-ai"}  # none for fix_lint
    factory, run_id = authorized_run(tmp_path, settings)
    assert factory.store.require_run(run_id).engine == ""
    factory.loop.default_engines = {"fix_lint": "recipe:lint-fix"}  # another worker's settings
    done = factory.loop.execute(run_id)
    assert done.state is RunState.FAILED and "names no engine" in done.reason, done.reason
    assert proposals(factory, run_id) == []
