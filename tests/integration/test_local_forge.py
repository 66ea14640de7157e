"""The local forge against real git: branches built from plumbing, hooks never run."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from codefactory.domain import Change, FileChange
from codefactory.review import BranchExists, EmptyChange, ForgeError
from codefactory.review.local_forge import COMMITTER_EMAIL, LocalForge
from codefactory.sandbox.mirror import Mirrors
from tests.conftest import git, make_repo
from tests.integration.test_mirror import plant_traps

BASE_FILES = {
    "requirements.txt": "idna==3.6\nrequests==2.31.0\n",
    "app/main.py": "print('hello')\n",
    "scripts/run.sh": "#!/bin/sh\necho run\n",
    "old.txt": "to be removed\n",
}


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "payments-api"
    make_repo(repo, BASE_FILES)
    script = repo / "scripts" / "run.sh"
    script.chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "make run.sh executable")
    return repo, git(repo, "rev-parse", "HEAD")


@pytest.fixture
def forge(tmp_path: Path) -> LocalForge:
    return LocalForge(tmp_path / "forge")


def _change(*files: tuple[str, bytes | None]) -> Change:
    return Change(files=tuple(FileChange(path=p, content=c) for p, c in files))


REPOSITORY = "acme/payments-api"


def _open(forge: LocalForge, repo: Path, base: str, change: Change, branch: str) -> str:
    return forge.open_change(
        repo=repo,
        repository=REPOSITORY,
        base_commit=base,
        branch=branch,
        change=change,
        message="Bump idna to 3.7\n\nRun: r-1\n",
        author_name="dependency-bot",
        author_email="agent-r-1@codefactory.invalid",
    )


BUMP = _change(
    ("requirements.txt", b"idna==3.7\nrequests==2.31.0\n"),
    ("scripts/run.sh", b"#!/bin/sh\necho run fast\n"),
    ("old.txt", None),
    ("docs/new.md", b"# New\n"),
)


def test_open_change_builds_the_branch_in_a_bare_repository(
    source: tuple[Path, str], forge: LocalForge
) -> None:
    repo, base = source
    commit = _open(forge, repo, base, BUMP, "factory/r-1")
    bare = forge.repository_path(REPOSITORY)
    digest = hashlib.sha256(REPOSITORY.encode()).hexdigest()[:12]
    assert bare == forge.forge_dir / f"acme-payments-api-{digest}.git"
    assert (bare / "description").read_text() == REPOSITORY + "\n"
    assert git(bare, "rev-parse", "--is-bare-repository") == "true"
    assert forge.branch_head(REPOSITORY, "factory/r-1") == commit
    assert git(bare, "show", "factory/r-1:requirements.txt") == "idna==3.7\nrequests==2.31.0"
    assert git(bare, "rev-parse", f"{commit}^") == base
    assert git(bare, "show", "-s", "--format=%an <%ae>|%cn <%ce>", commit) == (
        f"dependency-bot <agent-r-1@codefactory.invalid>|Code Factory <{COMMITTER_EMAIL}>"
    )
    assert git(bare, "show", "-s", "--format=%B", commit).startswith("Bump idna to 3.7")


def test_deletions_additions_and_modes(source: tuple[Path, str], forge: LocalForge) -> None:
    repo, base = source
    commit = _open(forge, repo, base, BUMP, "factory/r-1")
    bare = forge.repository_path(REPOSITORY)
    listing = git(bare, "ls-tree", "-r", commit).splitlines()
    modes = {line.split("\t")[1]: line.split()[0] for line in listing}
    assert "old.txt" not in modes
    assert modes["scripts/run.sh"] == "100755"
    assert modes["requirements.txt"] == "100644"
    assert modes["docs/new.md"] == "100644"
    assert modes["app/main.py"] == "100644"


def test_no_work_tree_and_no_hook_runs(
    source: tuple[Path, str], forge: LocalForge, tmp_path: Path
) -> None:
    repo, base = source
    marker = tmp_path / "hook-ran"
    for hook in ("pre-commit", "post-commit", "reference-transaction", "post-checkout",
                 "pre-push", "post-update", "pre-upload-pack", "fsmonitor-watchman"):  # fmt: skip
        path = repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        path.chmod(0o755)
    _open(forge, repo, base, BUMP, "factory/r-1")
    bare = forge.repository_path(REPOSITORY)
    hook = bare / "hooks" / "reference-transaction"
    hook.write_text(f"#!/bin/sh\necho forge-hook >> {marker}\n")
    hook.chmod(0o755)
    _open(forge, repo, base, _change(("app/main.py", b"pass\n")), "factory/r-2")
    assert not marker.exists()
    assert not (bare / "requirements.txt").exists()
    assert not list(forge.forge_dir.glob(".index-*"))


def test_diff_applies_on_the_base(
    source: tuple[Path, str], forge: LocalForge, tmp_path: Path
) -> None:
    repo, base = source
    binary = bytes(range(256))
    change = _change(*[(f.path, f.content) for f in BUMP.files], ("logo.bin", binary))
    commit = _open(forge, repo, base, change, "factory/r-1")
    patch = forge.diff(repository=REPOSITORY, base_commit=base, head_commit=commit)
    assert "+idna==3.7" in patch
    assert "GIT binary patch" in patch
    patch_file = tmp_path / "change.patch"
    patch_file.write_bytes(patch.encode("utf-8", "surrogateescape"))
    git(repo, "checkout", "-q", base)
    git(repo, "apply", "--check", str(patch_file))
    git(repo, "apply", str(patch_file))
    assert (repo / "logo.bin").read_bytes() == binary
    assert not (repo / "old.txt").exists()
    assert os.stat(repo / "scripts" / "run.sh").st_mode & stat.S_IXUSR


def test_empty_change_is_refused(source: tuple[Path, str], forge: LocalForge) -> None:
    repo, base = source
    with pytest.raises(EmptyChange):
        _open(forge, repo, base, Change(files=()), "factory/r-1")
    same = _change(("requirements.txt", BASE_FILES["requirements.txt"].encode()))
    with pytest.raises(EmptyChange):
        _open(forge, repo, base, same, "factory/r-1")
    assert forge.branch_head(REPOSITORY, "factory/r-1") is None


def test_existing_branch_is_never_moved(source: tuple[Path, str], forge: LocalForge) -> None:
    repo, base = source
    first = _open(forge, repo, base, BUMP, "factory/r-1")
    assert _open(forge, repo, base, BUMP, "factory/r-1") == first  # a retried run
    other = _change(("requirements.txt", b"idna==3.8\n"))
    with pytest.raises(BranchExists) as raised:
        _open(forge, repo, base, other, "factory/r-1")
    assert raised.value.existing == first
    assert forge.branch_head(REPOSITORY, "factory/r-1") == first


def test_git_failures_carry_the_stderr(source: tuple[Path, str], forge: LocalForge) -> None:
    repo, base = source
    with pytest.raises(ForgeError, match="invalid path|\\.git"):
        _open(forge, repo, base, _change((".git/config", b"x")), "factory/r-2")
    with pytest.raises(ForgeError, match="not found|fetch"):
        _open(forge, repo, "f" * 40, BUMP, "factory/r-3")
    with pytest.raises(ForgeError, match="not a full commit id"):
        _open(forge, repo, "--upload-pack=touch", BUMP, "factory/r-4")
    with pytest.raises(ForgeError, match="invalid branch name"):
        _open(forge, repo, base, BUMP, "bad..name")


def test_branch_head_is_none_when_absent(forge: LocalForge) -> None:
    assert forge.branch_head("nothing-here", "factory/r-1") is None
    with pytest.raises(ForgeError, match="repository id is required"):
        forge.repository_path("")
    # any id is a file name inside the forge: its slug and a hash, never a path
    for hostile in ("../escape", "/etc/passwd", "..", "a/../../b", "-upload-pack"):
        path = forge.repository_path(hostile)
        assert path.parent == forge.forge_dir and not path.name.startswith(("-", "."))


def test_second_run_reuses_the_bare_repository(source: tuple[Path, str], forge: LocalForge) -> None:
    repo, base = source
    _open(forge, repo, base, BUMP, "factory/r-1")
    (repo / "requirements.txt").write_text("idna==3.6\nrequests==2.32.0\n")
    git(repo, "commit", "-q", "-am", "bump requests")
    newer = git(repo, "rev-parse", "HEAD")
    commit = _open(forge, repo, newer, _change(("app/main.py", b"print('hi')\n")), "factory/r-2")
    bare = forge.repository_path(REPOSITORY)
    assert git(bare, "rev-parse", f"{commit}^") == newer
    branches = subprocess.run(
        ["git", "-C", str(bare), "for-each-ref", "--format=%(refname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert branches == ["refs/heads/factory/r-1", "refs/heads/factory/r-2"]


def test_a_symlink_replaced_by_a_file_is_committed_as_a_regular_file(
    source: tuple[Path, str], forge: LocalForge
) -> None:
    repo, _ = source
    (repo / "link").symlink_to("/etc/passwd")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a symlink")
    base = git(repo, "rev-parse", "HEAD")
    commit = _open(forge, repo, base, _change(("link", b"now a file\n")), "factory/r-2")
    bare = forge.repository_path(REPOSITORY)
    (line,) = git(bare, "ls-tree", commit, "link").splitlines()
    assert line.split()[0] == "100644"
    assert git(bare, "show", f"{commit}:link") == "now a file"


def test_the_base_commit_comes_from_the_factory_mirror_never_the_source(
    source: tuple[Path, str], tmp_path: Path
) -> None:
    repo, base = source
    marker = plant_traps(repo, tmp_path / "traps")
    mirrors = Mirrors(tmp_path / "mirrors")
    forge = LocalForge(tmp_path / "forge", mirrors=mirrors)
    commit = _open(forge, repo, base, BUMP, "factory/r-1")
    assert not marker.exists(), marker.read_text()
    assert git(forge.repository_path(REPOSITORY), "rev-parse", f"{commit}^") == base
    assert [p.name for p in mirrors.root.glob("*.git")] == [
        f"payments-api-{hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:12]}.git"
    ]
    assert LocalForge(tmp_path / "own").mirrors.root == (tmp_path / "own" / ".mirrors").resolve()


def test_a_source_that_is_gone_is_a_forge_error(tmp_path: Path) -> None:
    forge = LocalForge(tmp_path / "forge")
    with pytest.raises(ForgeError, match="could not mirror"):
        _open(forge, tmp_path / "nowhere", "a" * 40, BUMP, "factory/r-1")


def test_two_repositories_with_the_same_folder_name_never_share_a_forge_repository(
    tmp_path: Path, forge: LocalForge
) -> None:
    """Issue 10: two `itsdangerous` checkouts pushed into one forge repository."""
    branches = {}
    for owner in ("pallets", "someone-else"):
        checkout = tmp_path / owner / "itsdangerous"
        make_repo(checkout, {"README.md": f"{owner}'s itsdangerous\n"})
        base = git(checkout, "rev-parse", "HEAD")
        branches[owner] = forge.open_change(
            repo=checkout,
            repository=f"{owner}/itsdangerous",
            base_commit=base,
            branch="factory/r-1",  # the same branch name in both: no BranchExists
            change=_change(("README.md", f"{owner}, changed\n".encode())),
            message="Change\n",
            author_name="bot",
            author_email="bot@codefactory.invalid",
        )
    pallets = forge.repository_path("pallets/itsdangerous")
    other = forge.repository_path("someone-else/itsdangerous")
    assert pallets != other and pallets.is_dir() and other.is_dir()
    assert sorted(p.name for p in forge.forge_dir.glob("*.git")) == sorted(
        [pallets.name, other.name]
    )
    assert git(pallets, "show", "factory/r-1:README.md") == "pallets, changed"
    assert git(other, "show", "factory/r-1:README.md") == "someone-else, changed"
    assert forge.branch_head("pallets/itsdangerous", "factory/r-1") == branches["pallets"]
    # ids that slug alike are still two repositories
    assert forge.repository_path("acme/x") != forge.repository_path("acme-x")


def test_a_forge_repository_holding_another_id_is_refused(
    source: tuple[Path, str], forge: LocalForge
) -> None:
    repo, base = source
    _open(forge, repo, base, BUMP, "factory/r-1")
    bare = forge.repository_path(REPOSITORY)
    (bare / "description").write_text("acme/someone-else\n")
    with pytest.raises(ForgeError, match="holds 'acme/someone-else'"):
        forge.branch_head(REPOSITORY, "factory/r-1")


def test_a_review_opened_before_ids_is_still_read_from_its_folder_named_repository(
    source: tuple[Path, str], forge: LocalForge
) -> None:
    """Migration 0007 names old runs `local:<path>`; their branches stay in `<folder>.git`."""
    repo, base = source
    commit = _open(forge, repo, base, BUMP, "factory/r-old")
    forge.repository_path(REPOSITORY).rename(forge.forge_dir / "payments-api.git")  # as before
    old_id = f"local:{repo.resolve()}"
    assert forge.branch_head(old_id, "factory/r-old") == commit
    assert forge.branch_head(old_id, "factory/r-other") is None
    assert forge.branch_head("acme/payments-api", "factory/r-old") is None  # ids only: no guess
