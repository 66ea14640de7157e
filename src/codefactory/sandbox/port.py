"""The execution-environment port: a sandbox provisions isolated workspaces."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from codefactory.domain import Change, ExecResult
from codefactory.sandbox.egress import EgressListener
from codefactory.sandbox.limits import Limits


class Phase(enum.StrEnum):
    """Why a command runs; only SETUP may reach the package index."""

    SETUP = "setup"
    ENGINE = "engine"
    CHECK = "check"


class Workspace(Protocol):
    """An isolated, writable copy of a repository at its base commit.

    ENGINE commands and `write_file` write the engine's layer, the only one `changes` reads;
    SETUP and CHECK commands run on a throwaway layer over it, discarded when the engine
    works again, so nothing a test writes reaches the change."""

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
        limits: Limits | None = None,
        allow_hosts: Sequence[str] = (),
        mounts: Mapping[str, Path] | None = None,
        resolve: Mapping[str, str] | None = None,
    ) -> ExecResult:
        """Run one command inside the sandbox, in the workspace root. `timeout_s` is its wall
        clock; `limits` overrides the sandbox's other limits for this call; `allow_hosts`
        widens the phase's egress allow-list for this call, and `resolve` (host →
        `address:port`) tells the egress proxy where some of those hosts are (a harness
        service on the loopback). `mounts` (sandbox path → host folder) lends folders
        read-only, nosuid, nodev, never over the workspace or a system folder. A refused
        `mounts` or `resolve` entry is a ValueError before anything runs; a backend that
        cannot offer them raises `SandboxUnavailable`. When it returns, no process it
        started is left; `ExecResult.limit_hit` names a limit that killed it."""
        ...

    def read_file(self, path: str, *, phase: Phase = Phase.ENGINE) -> bytes | None:
        """Read a workspace file as the sandbox shows it to `phase` (a check reads its own
        output from the throwaway layer); None when absent."""
        ...

    def write_file(self, path: str, content: bytes) -> None:
        """Write a workspace file from inside the sandbox, into the engine's layer."""
        ...

    def changes(self) -> Change:
        """The files the engine changed relative to the base commit (ignored and tool files
        excluded); what setup and check commands wrote is never part of it."""
        ...

    def destroy(self) -> None:
        """Remove every trace of the workspace on the host."""
        ...


class Sandbox(Protocol):
    """Makes workspaces; one per run."""

    def provision(
        self,
        *,
        repo: Path,
        commit: str,
        run_id: str,
        on_egress: EgressListener | None = None,
    ) -> Workspace:
        """Create a workspace over `repo` at the commit `commit` names (`HEAD`, a sha, a branch);
        dependencies are installed by the setup phase (or come with a pre-warmed image).
        Raises `ProvisionFailed` for a path that is not a git repository or has no such
        commit. `on_egress` receives every egress attempt of the workspace's commands."""
        ...
