"""The celery executor end to end under chaos (issue 15; marker `chaos`, which CI runs): the
real CLI's `serve --workers 0` and three `worker` processes on PostgreSQL and Redis, 200
signed deliveries, workers killed and restarted, broker connections cut (tests/chaos.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.conftest import TEMPLATE, Cli
from tests.chaos import run_chaos
from tests.conftest import make_repo


def repositories(root: Path) -> tuple[Path, Path]:
    """The demo's sample service (a lint finding to fix) and a clean one (nothing to fix)."""
    service = TEMPLATE / "sample-service"
    files = {str(p.relative_to(service)): p.read_text() for p in service.rglob("*") if p.is_file()}
    files["requirements.txt"] = "idna==3.7\n"
    make_repo(root / "sample-service", files)
    make_repo(root / "clean-service", {"app.py": '"""A clean module."""\n\nVALUE = 1\n'})
    return root / "sample-service", root / "clean-service"


@pytest.mark.chaos
def test_chaos_200_deliveries_3_workers_killed_and_cut_off(cli: Cli, tmp_path: Path) -> None:
    lint, clean = repositories(tmp_path)
    env = {**cli.env, "CODEFACTORY_DATA_DIR": str(cli.data_dir)}
    # settled within 240 s or failed with the figures, before pytest-timeout's 300 s
    figures = run_chaos(tmp_path, base_env=env, lint_repo=lint, clean_repo=clean,
                        settle_timeout_s=240.0)  # fmt: skip
    print("\n".join(figures.lines()))
    assert figures.problems == []
    assert figures.acknowledged == figures.runs == 200
    assert figures.worker_kills == 5 and figures.broker_cuts == 2
