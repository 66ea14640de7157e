"""Workspaces at the base commit, made on first use and destroyed when the gate is done.

The engine's workspace cannot show the base any more (and the engine may have written
anything into it), so the base comes from the repository again: one workspace for scans
(no dependencies needed) and, only when a test map must be recorded, one with the
repository's dependencies installed. Without a sandbox or a repository (a gate built for
one check, a test) there is no base: the gate then relies on its cache alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from codefactory.sandbox.errors import SandboxError
from codefactory.sandbox.port import Sandbox, Workspace
from codefactory.verify.serial import SerialWorkspace

SetupPhase = Callable[[Workspace], object]
"""Installs a workspace's dependencies (the factory's setup phase)."""


class BaseUnavailable(Exception):
    """No workspace at the base commit can be made; the message says why."""


class BaseTrees:
    """The base-commit workspaces of one gate run (thread-safe, lazy)."""

    def __init__(
        self,
        *,
        sandbox: Sandbox | None,
        repo: Path | None,
        commit: str,
        run_id: str,
        setup: SetupPhase | None = None,
    ) -> None:
        self._sandbox = sandbox
        self._repo = repo
        self.commit = commit
        self._run_id = run_id
        self._setup = setup
        self._made: dict[str, Workspace] = {}
        self._failed: dict[str, str] = {}
        # one lock per kind: installing dependencies for the test map must not hold up scans
        self._locks = {"scan": threading.Lock(), "installed": threading.Lock()}

    def for_scans(self) -> Workspace:
        """A workspace at the base commit; BaseUnavailable when none can be made.

        With a setup phase, the installed one (from the image when there is one): it holds
        the scanners' environment, bandit on the project's own Python, so the base is scanned
        by the same interpreter as the change. When the base cannot be installed, a bare one.
        """
        if self._setup is not None:
            try:
                return self.installed()
            except BaseUnavailable:
                pass
        return self._get("scan", install=False)

    def installed(self) -> Workspace:
        """A workspace at the base commit with the repository's dependencies installed."""
        if self._setup is None:
            raise BaseUnavailable("no setup phase to install the base commit's dependencies")
        return self._get("installed", install=True)

    def close(self) -> None:
        for kind, lock in self._locks.items():
            with lock:
                workspace = self._made.pop(kind, None)
                if workspace is not None:
                    workspace.destroy()

    def _get(self, kind: str, *, install: bool) -> Workspace:
        with self._locks[kind]:
            if kind in self._made:
                return self._made[kind]
            if kind in self._failed:
                raise BaseUnavailable(self._failed[kind])
            try:
                workspace = self._provision(kind, install)
            except BaseUnavailable as exc:
                self._failed[kind] = str(exc)
                raise
            self._made[kind] = SerialWorkspace(workspace)
            return self._made[kind]

    def _provision(self, kind: str, install: bool) -> Workspace:
        if self._sandbox is None or self._repo is None:
            raise BaseUnavailable("no repository to read the base commit from")
        try:
            workspace = self._sandbox.provision(
                repo=self._repo, commit=self.commit, run_id=f"{self._run_id}-base-{kind}"
            )
        except SandboxError as exc:
            raise BaseUnavailable(f"the base commit could not be provisioned: {exc}") from exc
        if install and self._setup is not None:
            try:
                self._setup(workspace)
            except SandboxError as exc:
                workspace.destroy()
                raise BaseUnavailable(f"the base commit's dependencies failed: {exc}") from exc
        return workspace
