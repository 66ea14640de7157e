"""The loop runs the engine the registry cleared and policy saw, never another: an engine
installed under the run's kind (as a loop built by hand may key its recipes) is taken only
when it bears the run's engine name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.domain import ChangeKind, Run
from codefactory.factory import build_factory
from codefactory.runs.loop import RunFailed, RunLoop
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
