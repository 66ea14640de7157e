"""What the forge tests share across the four forges (GitHub, GitLab, Azure DevOps, Bitbucket)."""

from __future__ import annotations

from pathlib import Path

from codefactory.review.forges.errors import (
    ForgeApiError,
    ForgeConflict,
    ForgeForbidden,
    ForgeInvalid,
    ForgeNotFound,
    ForgeUnauthorized,
    ForgeUnavailable,
)
from codefactory.review.port import ConfirmedApproval
from tests.conftest import make_repo
from tests.forge_standins.git_http import GitHttpStandin, git

NAMED_ERRORS: tuple[tuple[int, type[ForgeApiError]], ...] = (
    (400, ForgeInvalid),
    (401, ForgeUnauthorized),
    (403, ForgeForbidden),
    (404, ForgeNotFound),
    (409, ForgeConflict),
    (422, ForgeInvalid),
    (500, ForgeUnavailable),
)
"""(HTTP status a forge answers, the named error the client raises for it): every forge client
reads a refusal the same way (`review.forges.http`), so each forge's test runs every row."""


def local_and_forge_copy(tmp_path: Path, git_host: GitHttpStandin, repo: str) -> tuple[Path, str]:
    """The factory's local bare repository (`tmp_path/local.git`) holding a commit on top of
    `main` at `refs/heads/work`, and that commit's id; `git_host` holds `repo` with `main` only
    (the forge's copy before the factory pushes)."""
    source = tmp_path / "source"
    make_repo(source, {"app.py": "print('hi')\n"})
    git_host.create(repo, seed=source)
    git(source, "checkout", "-q", "-b", "work")
    (source / "app.py").write_text("print('hello')\n")
    git(source, "commit", "-q", "-am", "change")
    bare = tmp_path / "local.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    return bare, git(bare, "rev-parse", "refs/heads/work")


def approval_on_main(
    commit: str, repository: str, author_login: str, *, commit_bound: bool = False
) -> ConfirmedApproval:
    """The approval a forge confirms for a request from `repository`'s own branch into its
    `main` (no fork), opened by `author_login`, whose head is `commit`."""
    return ConfirmedApproval(
        approved=True,
        commit=commit,
        head_repository=repository,
        base_repository=repository,
        base_branch="main",
        author_login=author_login,
        commit_bound=commit_bound,
    )
