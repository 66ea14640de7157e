"""One command at a time per workspace, however many checks share it.

Each sandboxed command mounts the workspace's overlay in its own mount namespace, and
overlayfs prepares the shared work folder at every mount: two mounts of the same layers at
once race and one fails to start. The gate therefore runs checks in parallel across
workspaces (the change's and the base commit's) and serialises the commands within each.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from codefactory.domain import Change, ExecResult
from codefactory.sandbox.port import Phase, Workspace


class SerialWorkspace:
    """A `Workspace` whose commands and file operations never overlap."""

    def __init__(self, inner: Workspace) -> None:
        self.inner = inner
        self.run_id = inner.run_id
        self.base_commit = inner.base_commit
        self._lock = threading.Lock()

    def exec(
        self,
        command: Sequence[str],
        *,
        phase: Phase,
        timeout_s: float = 300.0,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> ExecResult:
        with self._lock:
            return self.inner.exec(
                command, phase=phase, timeout_s=timeout_s, stdin=stdin, env=env, **options
            )

    def read_file(self, path: str, *, phase: Phase = Phase.ENGINE) -> bytes | None:
        with self._lock:
            return self.inner.read_file(path, phase=phase)

    def write_file(self, path: str, content: bytes) -> None:
        with self._lock:
            self.inner.write_file(path, content)

    def changes(self) -> Change:
        with self._lock:
            return self.inner.changes()

    def destroy(self) -> None:
        self.inner.destroy()
