"""The setup phase: install the repository's dependencies into `/env`.

It is the one phase whose default egress policy reaches the package index (through the
proxy). A workspace provisioned from a pre-warmed image already has them, and says so.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from codefactory.sandbox.errors import SetupFailed
from codefactory.sandbox.layout import ENV_DIR, UV, system_tool
from codefactory.sandbox.port import Phase, Workspace

REQUIREMENTS = re.compile(r"^requirements[\w.-]*\.txt$")
DEPENDENCY_FILES = re.compile(r"^(requirements[\w.-]*\.txt|pyproject\.toml|setup\.cfg|setup\.py)$")


def dependency_files(paths: list[str]) -> list[str]:
    """The paths among `paths` whose change means the setup phase must run again."""
    return [p for p in paths if DEPENDENCY_FILES.match(p)]


@runtime_checkable
class PrewarmedWorkspace(Protocol):
    """A workspace that may already hold its installed dependencies (from an image)."""

    def installed_dependencies(self) -> list[str] | None:
        """The requirement files already installed, or None when setup must run."""
        ...


def install_dependencies(
    workspace: Workspace, *, python: str = "/usr/bin/python3", timeout_s: float = 600.0
) -> list[str]:
    """Create the virtualenv and install every root `requirements*.txt`; returns those files.
    Nothing runs when the workspace's image already installed them."""
    if isinstance(workspace, PrewarmedWorkspace):
        ready = workspace.installed_dependencies()
        if ready is not None:
            return ready
    listing = workspace.exec([system_tool("ls"), "-1A"], phase=Phase.ENGINE, timeout_s=30)
    files = sorted(n for n in listing.stdout.splitlines() if REQUIREMENTS.match(n))
    steps = [[UV, "venv", "--quiet", "--allow-existing", "--python", python, ENV_DIR]]
    if files:
        steps.append(
            [
                UV,
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
                f"the sandbox's {result.limit_hit} limit was hit"
                if result.limit_hit
                else (result.stderr.strip() or result.stdout.strip())
            )
            raise SetupFailed(f"setup phase failed at `{' '.join(step)}`: {cause[-2000:]}")
    return files
