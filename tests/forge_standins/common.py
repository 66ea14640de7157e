"""What the forge tests share across the four forges (GitHub, GitLab, Azure DevOps, Bitbucket)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.domain import Run, RunState
from codefactory.factory import Factory, build_factory
from codefactory.identity.directory import IdentityKind
from codefactory.review.forges.errors import (
    ForgeApiError,
    ForgeConflict,
    ForgeForbidden,
    ForgeInvalid,
    ForgeNotFound,
    ForgeUnauthorized,
    ForgeUnavailable,
)
from codefactory.review.forges.settings import ForgeSettings
from codefactory.review.port import ConfirmedApproval
from codefactory.runs.tickets import accept_ticket
from codefactory.triggers.caller import Caller
from codefactory.triggers.settings import RepositoryBinding, TriggerSettings
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, make_repo, sample_service
from tests.directory_helpers import standard_directory
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


def publishing_factory(
    tmp_path: Path,
    uv_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    git_host: GitHttpStandin,
    *,
    repository: str,
    binding: str,
    app_token: str,
    forge: dict[str, object],
) -> tuple[Factory, Path]:
    """The real factory publishing to the forge stand-ins, and the sample service's checkout:
    `repository` is seeded on `git_host` from the sample service and bound as `binding`
    (`acme/payments`, `gitlab:group/project`); `forge` holds the `ForgeSettings` fields other
    than `git_url` and `token_file` (type, base_url, user_tokens), `app_token` goes in the
    token file; the people are the standard directory's."""
    repo = sample_service(tmp_path / "sample-service")
    git_host.create(repository, seed=repo)
    monkeypatch.setenv(
        "CODEFACTORY_IDENTITY__DIRECTORY_FILE", str(standard_directory(tmp_path / "people"))
    )
    token_file = tmp_path / "forge-app-token"
    token_file.write_text(app_token + "\n")
    settings = Settings(
        data_dir=data_dir_sharing_cache(tmp_path / "data", uv_cache),
        triggers=TriggerSettings(repositories={binding: RepositoryBinding(path=repo)}),
        forge=ForgeSettings.model_validate(
            {**forge, "git_url": git_host.url, "token_file": token_file}
        ),
    )
    return build_factory(settings), repo


TICKET = TEMPLATE / "tickets" / "SVC-102.json"
"""The ticket the end-to-end forge tests run (sponsored by priya.shah)."""


def unopened_without_a_token(factory: Factory, repo: Path) -> Run:
    """The ticket accepted again, from ServiceNow for jordan.lee, who holds no forge token:
    the run reaches review but its request is not opened under anyone else's account
    (asserted: `forge-publish-failed` at `open request`, `forge-no-user-token`)."""
    other = accept_ticket(
        factory,
        payload=TICKET.read_bytes(),
        repo=repo,
        caller=Caller(kind=IdentityKind.SERVICENOW, identity="jordan.lee"),
    )
    assert other.state is RunState.IN_REVIEW, other.reason
    failed = {e.name: e.data for e in factory.store.audit_events(other.id)}
    assert failed["forge-publish-failed"]["step"] == "open request"
    assert failed["forge-publish-failed"]["error"] == "forge-no-user-token"
    assert "pull-request-opened" not in failed
    return other
