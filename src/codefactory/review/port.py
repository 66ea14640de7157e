"""The review port: a forge holds the change on a branch where humans review it.

Repositories are named by canonical id (`acme/payments`, `local:/srv/payments`), never by
folder name: two repositories never share a forge repository."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from codefactory.domain import Change


class Forge(Protocol):
    """Where a run's change becomes a reviewable branch: a local bare repo, GitHub, GitLab."""

    def open_change(
        self,
        *,
        repo: Path,
        repository: str,
        base_commit: str,
        branch: str,
        change: Change,
        message: str,
        author_name: str,
        author_email: str,
    ) -> str:
        """Commit `change` on top of `base_commit` (read from the checkout `repo`) as
        `branch` of the forge repository of `repository`, a canonical id
        (docs/repositories.md); returns the new commit id."""
        ...

    def diff(self, *, repository: str, base_commit: str, head_commit: str) -> str:
        """The change as a unified patch (`git diff --binary`) a reviewer can apply."""
        ...

    def branch_head(self, repository: str, branch: str) -> str | None:
        """The commit `branch` points at; None when the branch or repository is absent."""
        ...

    def repository_path(self, repository: str) -> Path:
        """Where the forge keeps the repository with canonical id `repository`; the package
        tells reviewers to look there."""
        ...
