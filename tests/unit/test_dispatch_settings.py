"""Dispatch settings and the CLI's refusals of an executor it cannot run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from codefactory.dispatch.celery_executor import celery_app
from codefactory.dispatch.settings import DispatchSettings

CLI = Path(sys.executable).parent / "codefactory"


def test_the_lease_defaults_to_one_and_a_half_heartbeats_and_sweeps_four_times_a_beat() -> None:
    settings = DispatchSettings(heartbeat_s=2.0)
    assert (settings.lease_seconds, settings.scan_s) == (3.0, 0.5)
    assert settings.lease_seconds + settings.scan_s <= 2 * settings.heartbeat_s


def test_a_lease_no_longer_than_the_heartbeat_is_refused() -> None:
    with pytest.raises(ValidationError, match="must exceed dispatch.heartbeat_s"):
        DispatchSettings(heartbeat_s=5.0, lease_s=5.0)


def test_the_celery_app_takes_json_only_and_acknowledges_late() -> None:
    app = celery_app(DispatchSettings(broker_url="redis://:secret@127.0.0.1:6379/9"))
    conf = app.conf
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    with pytest.raises(ValueError, match="CODEFACTORY_DISPATCH__BROKER_URL"):
        celery_app(DispatchSettings())


CELERY = {"CODEFACTORY_DISPATCH__EXECUTOR": "celery"}
NO_BROKER = "needs CODEFACTORY_DISPATCH__BROKER_URL"


@pytest.mark.parametrize(
    ("command", "env", "message"),
    [
        (["worker"], {}, "needs the celery executor"),
        (["worker"], CELERY, NO_BROKER),
        (["serve", "--port", "1"], CELERY, NO_BROKER),
    ],
)
def test_a_worker_or_serve_without_what_its_executor_needs_is_refused_in_one_line(
    tmp_path: Path, command: list[str], env: dict[str, str], message: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEFACTORY_DISPATCH")}
    done = subprocess.run(
        [str(CLI), "--data-dir", str(tmp_path / "data"), *command],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
