"""Run the `codefactory` CLI as a subprocess against a data folder of the test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import data_dir_sharing_cache
from tests.directory_helpers import directory_env

CLI = Path(sys.executable).parent / "codefactory"
TEMPLATE = Path(__file__).resolve().parents[2] / "src" / "codefactory" / "demo_template"


@dataclass
class Cli:
    """Calls the installed console script with `--data-dir` set."""

    data_dir: Path
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(CLI), "--data-dir", str(self.data_dir), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=600,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{args} exited {result.returncode}: {result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json", check=True).stdout)


@pytest.fixture
def cli(tmp_path: Path, uv_cache: Path, bwrap_available: None, people_directory: Path) -> Cli:
    data_dir = data_dir_sharing_cache(tmp_path / "data", uv_cache)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEFACTORY_")}
    if "CODEFACTORY_DATABASE_URL" in os.environ:  # the suite's PostgreSQL database (conftest)
        env["CODEFACTORY_DATABASE_URL"] = os.environ["CODEFACTORY_DATABASE_URL"]
    env["CI"] = "true"
    env["CODEFACTORY_VERIFY__ADVISORIES_MAX_AGE_DAYS"] = "none"  # shipped data, never synced
    env.update(directory_env(people_directory))  # this OS account sponsors the CLI's runs
    return Cli(data_dir=data_dir, env=env)


def ticket_file(tmp_path: Path, name: str, **overrides: Any) -> Path:
    """A copy of one of the shipped demo tickets, with top-level `fields` overridden."""
    ticket = json.loads((TEMPLATE / "tickets" / f"{name}.json").read_text())
    ticket["fields"].update(overrides)
    target = tmp_path / f"{name}-{len(overrides)}.json"
    target.write_text(json.dumps(ticket))
    return target
