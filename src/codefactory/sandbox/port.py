"""The execution-environment port: a sandbox provisions isolated workspaces."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from codefactory.domain import Change, ExecResult


class Phase(enum.StrEnum):
    """Why a command runs; only SETUP may reach the package index."""

    SETUP = "setup"
    ENGINE = "engine"
    CHECK = "check"


class Workspace(Protocol):
    """An isolated, writable copy of a repository at its base commit."""

    run_id: str
    base_commit: str
    """The full commit id the workspace was provisioned at."""

    def exec(
        self,
        command: Sequence[str],
        *,
        phase: Phase,
        timeout_s: float = 300.0,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        """Run one command inside the sandbox, in the workspace root."""
        ...

    def read_file(self, path: str) -> bytes | None:
        """Read a workspace file as the sandbox sees it; None when absent."""
        ...

    def write_file(self, path: str, content: bytes) -> None:
        """Write a workspace file from inside the sandbox."""
        ...

    def changes(self) -> Change:
        """The files changed relative to the base commit (ignored and tool files excluded)."""
        ...

    def destroy(self) -> None:
        """Remove every trace of the workspace on the host."""
        ...


class Sandbox(Protocol):
    """Makes workspaces; one per run."""

    def provision(self, *, repo: Path, commit: str, run_id: str) -> Workspace:
        """Create a workspace over `repo` at the commit `commit` names (`HEAD`, a sha, a branch);
        dependencies are not yet installed. Raises `ProvisionFailed` for a path that is not a
        git repository or has no such commit."""
        ...
