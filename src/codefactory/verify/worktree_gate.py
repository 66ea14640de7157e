"""The gate over a working tree, outside any run: what `codefactory verify` does.

The base revision is provisioned in the sandbox with its dependencies installed (the setup
phase, as in a run), the working tree's changes are written into it, and the gate judges
them against the base exactly as it judges an engine's change.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codefactory.domain import Change, CheckResult
from codefactory.sandbox.layout import system_tool
from codefactory.sandbox.mirror import Mirrors
from codefactory.sandbox.port import Phase, Sandbox, Workspace
from codefactory.verify.gate import Gate, passed
from codefactory.verify.worktree import SkippedPath, working_tree

DependencyFilter = Callable[[list[str]], list[str]]


@dataclass(frozen=True, kw_only=True)
class TreeVerdict:
    """The gate's results for one working tree against its base."""

    repository: Path
    base_commit: str
    change: Change
    results: tuple[CheckResult, ...]
    skipped: tuple[SkippedPath, ...] = ()
    """Changed paths not judged (links, FIFOs, ...): a link is reported as a link, never read."""

    @property
    def passed(self) -> bool:
        return passed(self.results)


def verify_working_tree(
    *,
    gate: Gate,
    sandbox: Sandbox,
    setup: Callable[[Workspace], object],
    dependency_files: DependencyFilter,
    repo: Path,
    base: str = "HEAD",
    mirrors: Mirrors | None = None,
) -> TreeVerdict:
    """Run the gate on `repo`'s working tree against `base`; raises SandboxError/VerifyError.
    Host git runs only in the factory's mirror of `repo` (`mirrors`), never in `repo`."""
    repo = repo.resolve()
    tree = working_tree(repo, base, mirrors=mirrors)
    commit, files = tree.base_commit, tree.files
    run_id = f"verify-{secrets.token_hex(4)}"
    workspace = sandbox.provision(repo=repo, commit=commit, run_id=run_id)
    try:
        setup(workspace)
        _apply(workspace, Change(files=files))
        if dependency_files([f.path for f in files]):
            setup(workspace)  # the change's own requirements, as a run's round would
        change = workspace.changes()
        results = gate.run(workspace, change, repo=repo)
    finally:
        workspace.destroy()
    return TreeVerdict(
        repository=repo,
        base_commit=commit,
        change=change,
        results=tuple(results),
        skipped=tree.skipped,
    )


def _apply(workspace: Workspace, change: Change) -> None:
    """Write each changed file into the workspace; remove the deleted ones."""
    for file in change.files:
        if file.content is not None:
            workspace.write_file(file.path, file.content)
    deleted = [f.path for f in change.files if f.content is None]
    if deleted:
        result = workspace.exec(
            [system_tool("rm"), "-f", "--", *deleted], phase=Phase.ENGINE, timeout_s=60
        )
        if not result.ok:
            raise OSError(f"could not delete files in the workspace: {result.stderr.strip()}")
