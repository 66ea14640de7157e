"""The setup phase: install the repository's dependencies into `/env`, the only networked step."""

from __future__ import annotations

import re

from codefactory.sandbox.bubblewrap import ENV_DIR
from codefactory.sandbox.errors import SetupFailed
from codefactory.sandbox.port import Phase, Workspace

REQUIREMENTS = re.compile(r"^requirements[\w.-]*\.txt$")
DEPENDENCY_FILES = re.compile(r"^(requirements[\w.-]*\.txt|pyproject\.toml|setup\.cfg|setup\.py)$")


def dependency_files(paths: list[str]) -> list[str]:
    """The paths among `paths` whose change means the setup phase must run again."""
    return [p for p in paths if DEPENDENCY_FILES.match(p)]


def install_dependencies(
    workspace: Workspace, *, python: str = "/usr/bin/python3", timeout_s: float = 600.0
) -> list[str]:
    """Create the virtualenv and install every root `requirements*.txt`; returns those files."""
    listing = workspace.exec(["ls", "-1A"], phase=Phase.ENGINE, timeout_s=30)
    files = sorted(n for n in listing.stdout.splitlines() if REQUIREMENTS.match(n))
    steps = [["uv", "venv", "--quiet", "--allow-existing", "--python", python, ENV_DIR]]
    if files:
        steps.append(
            [
                "uv",
                "pip",
                "install",
                "--quiet",
                "--python",
                f"{ENV_DIR}/bin/python",
                *[arg for f in files for arg in ("-r", f)],
            ]
        )
    for step in steps:
        result = workspace.exec(step, phase=Phase.SETUP, timeout_s=timeout_s)
        if not result.ok:
            cause = (
                "timed out"
                if result.timed_out
                else (result.stderr.strip() or result.stdout.strip())
            )
            raise SetupFailed(f"setup phase failed at `{' '.join(step)}`: {cause[-2000:]}")
    return files
