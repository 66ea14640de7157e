"""The default forge: one local bare git repository per repository, by canonical id.

A repository is its canonical id (docs/repositories.md), never its folder's name: the bare
repository of `acme/itsdangerous` is `acme-itsdangerous-<12 hex of SHA-256(id)>.git`, and
its git `description` file holds the id, checked on every use, so two repositories whose
checkouts share a folder name never share a forge repository.

The source repository is untrusted: nothing here checks out a file, runs a hook or reads a
configuration the factory did not write. The base commit is fetched from the factory's own
mirror of the source (`sandbox/mirror.py`), never from the source itself. Commits are built
from git plumbing with a temporary index, so no work tree ever exists.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from codefactory.domain import Change
from codefactory.review.errors import BranchExists, EmptyChange, ForgeError
from codefactory.review.signing import (
    CommitSignature,
    CommitSigning,
    signed_commit,
    verification_config,
)
from codefactory.sandbox.errors import ProvisionFailed
from codefactory.sandbox.mirror import Mirrors

COMMITTER_NAME = "Code Factory"
COMMITTER_EMAIL = "factory@codefactory.invalid"
_OBJECT_ID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
# A harvested change only carries regular files' contents, so a path that was a symlink at
# the base becomes a regular file; never commit new content under the symlink mode.
_KEPT_MODES = frozenset({"100644", "100755"})
_NEW_FILE_MODE = "100644"


_SLUG_UNSAFE = re.compile(r"[^a-z0-9._]+")
_SLUG_MAX = 60


def forge_name(repository: str) -> str:
    """The bare repository's file name for canonical id `repository`: a readable slug of
    the id (its last 60 characters of `[a-z0-9._-]`) and 12 hex digits of its SHA-256, so
    ids that slug alike (`acme/x`, `acme-x`) still differ. `ForgeError` for an empty id."""
    if not repository:
        raise ForgeError("a repository id is required")
    slug = _SLUG_UNSAFE.sub("-", repository.lower()).strip("-.")[-_SLUG_MAX:].strip("-.")
    digest = hashlib.sha256(repository.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{slug or 'repository'}-{digest}.git"


class LocalForge:
    """Review branches in bare repositories under `forge_dir/<forge_name(id)>`; base commits
    come from `mirrors` (the factory's; by default the forge's own, in `forge_dir/.mirrors`)."""

    def __init__(
        self,
        forge_dir: Path,
        *,
        signing: CommitSigning | None = None,
        mirrors: Mirrors | None = None,
    ) -> None:
        self.forge_dir = forge_dir.resolve()
        self.signing = signing
        self.mirrors = mirrors or Mirrors(self.forge_dir / ".mirrors")
        git = shutil.which("git")
        if git is None:
            raise ForgeError("git is not installed")
        self._git_path = git

    def repository_path(self, repository: str) -> Path:
        """Where the bare repository for canonical id `repository` lives (it may not exist)."""
        return self.forge_dir / forge_name(repository)

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
        """Commit `change` on `base_commit` (fetched from the mirror of the checkout `repo`)
        as `refs/heads/<branch>` of the forge repository of canonical id `repository`;
        returns the commit id."""
        if change.is_empty:
            raise EmptyChange(branch)
        _require_object_id(base_commit)
        bare = self._ensure_repository(repository)
        self._check_branch_name(bare, branch)
        self._fetch_base(bare, repo, base_commit)  # as given: the mirror judges the path
        tree = self._write_tree(bare, base_commit, change)
        if tree == self._git(bare, "rev-parse", f"{base_commit}^{{tree}}"):
            raise EmptyChange(branch)
        author = {
            "GIT_AUTHOR_NAME": author_name,
            "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": COMMITTER_NAME,
            "GIT_COMMITTER_EMAIL": COMMITTER_EMAIL,
        }
        signer = self.signing.signer(author_email) if self.signing else None
        commit = self._git(bare, "commit-tree", tree, "-p", base_commit, "-m", message, env=author)
        if signer is not None:  # the agent's key signs the commit's bytes (review/signing.py)
            raw = self._run(bare, ["cat-file", "commit", commit])
            commit = self._git(
                bare, "hash-object", "-t", "commit", "-w", "--stdin",
                stdin=signed_commit(raw, signer),
            )  # fmt: skip
        return self._create_branch(bare, branch, commit)

    def verify_commit(self, repository: str, commit: str, allowed_signers: Path) -> CommitSignature:
        """What plain git says of `commit`'s SSH signature, given an allowed_signers file."""
        _require_object_id(commit)
        bare = next((b for b in self._readable(repository) if self._has_commit(b, commit)), None)
        if bare is None:
            raise ForgeError(f"no forge repository for {repository}")
        fields = self._git(
            bare,
            *verification_config(allowed_signers),
            "show", "-s", "--format=%G?%x1f%GS%x1f%GF", commit,
        ).split("\x1f")  # fmt: skip
        status, signer, fingerprint = (fields + ["", ""])[:3]
        return CommitSignature(commit=commit, status=status, signer=signer, fingerprint=fingerprint)

    def commit_message(self, repository: str, commit: str) -> str:
        """The full message of `commit` (its trailers included); `ForgeError` if absent."""
        _require_object_id(commit)
        bare = next((b for b in self._readable(repository) if self._has_commit(b, commit)), None)
        if bare is None:
            raise ForgeError(f"no commit {commit} in the forge repository of {repository}")
        return self._run(bare, ["show", "-s", "--format=%B", commit]).decode("utf-8", "replace")

    def diff(self, *, repository: str, base_commit: str, head_commit: str) -> str:
        """The patch from base to head; bytes that are not UTF-8 survive as surrogates."""
        _require_object_id(base_commit)
        _require_object_id(head_commit)
        bare = self._existing(repository)
        if bare is None:
            raise ForgeError(f"no forge repository for {repository}")
        out = self._run(
            bare,
            ["diff", "--binary", "--no-color", "--no-ext-diff", "--no-textconv"]
            + [base_commit, head_commit, "--"],
        )
        return out.decode("utf-8", "surrogateescape")

    def branch_head(self, repository: str, branch: str) -> str | None:
        """The commit `branch` points at, or None."""
        for bare in self._readable(repository):
            head = self._ref_target(bare, f"refs/heads/{branch}")
            if head is not None:
                return head
        return None

    # -- plumbing ---------------------------------------------------------------------------

    def _existing(self, repository: str) -> Path | None:
        """The bare repository of `repository` if it exists (its recorded id checked)."""
        bare = self.repository_path(repository)
        if not (bare / "HEAD").is_file():
            return None
        self._check_owner(bare, repository)
        return bare

    def _readable(self, repository: str) -> list[Path]:
        """Where a branch or commit of `repository` may be read: its bare repository, then,
        for a `local:` id, the `<folder>.git` the forge used before ids (migration 0007), so
        reviews opened before the upgrade can still be decided. Reading there by branch
        (`factory/<run id>`) or commit id is unambiguous even if two folders shared it."""
        found = [bare] if (bare := self._existing(repository)) is not None else []
        if repository.startswith("local:"):
            folder = PurePosixPath(repository.removeprefix("local:")).name
            legacy = self.forge_dir / f"{folder}.git"
            if folder and not folder.startswith(".") and (legacy / "HEAD").is_file():
                found.append(legacy)
        return found

    def _ensure_repository(self, repository: str) -> Path:
        bare = self._existing(repository)
        if bare is None:
            bare = self.repository_path(repository)
            self.forge_dir.mkdir(parents=True, exist_ok=True)
            self._run(self.forge_dir, ["init", "--quiet", "--bare", str(bare)])
            (bare / "description").write_text(repository + "\n", encoding="utf-8")
        return bare

    @staticmethod
    def _check_owner(bare: Path, repository: str) -> None:
        """The bare repository records `repository` as its id (git's `description` file)."""
        try:
            recorded = (bare / "description").read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise ForgeError(f"{bare} does not say which repository it holds: {err}") from err
        if recorded != repository:
            raise ForgeError(f"{bare} holds {recorded!r}, not {repository!r}")

    def _check_branch_name(self, bare: Path, branch: str) -> None:
        proc = self._proc(bare, ["check-ref-format", f"refs/heads/{branch}"])
        if branch.startswith("-") or proc.returncode != 0:
            raise ForgeError(f"invalid branch name: {branch!r}")

    def _fetch_base(self, bare: Path, source: Path, base_commit: str) -> None:
        """Bring the base commit into the forge from the factory's mirror of the source."""
        if self._has_commit(bare, base_commit):
            return
        try:
            mirror = self.mirrors.sync(source)
        except ProvisionFailed as err:
            raise ForgeError(f"could not mirror {source}: {err}") from err
        self._run(
            bare,
            ["fetch", "--quiet", "--no-tags", "--no-recurse-submodules"]
            + ["--no-write-fetch-head", str(mirror.path), base_commit],
        )
        if not self._has_commit(bare, base_commit):
            raise ForgeError(f"base commit {base_commit} not found in {source}")

    def _write_tree(self, bare: Path, base_commit: str, change: Change) -> str:
        """Apply the change to the base tree in a throw-away index; returns the tree id."""
        modes = self._modes(bare, base_commit)
        with tempfile.TemporaryDirectory(dir=self.forge_dir, prefix=".index-") as scratch:
            index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            self._git(bare, "read-tree", base_commit, env=index)
            self._remove(bare, [f.path for f in change.files if f.content is None], index)
            for kept in change.files:
                if kept.content is None:
                    continue
                blob = self._git(
                    bare, "hash-object", "-w", "--no-filters", "--stdin", stdin=kept.content
                )
                mode = modes.get(kept.path, _NEW_FILE_MODE)
                mode = mode if mode in _KEPT_MODES else _NEW_FILE_MODE
                self._git(
                    bare,
                    "update-index", "--add", "--replace",
                    "--cacheinfo", f"{mode},{blob},{kept.path}",
                    env=index,
                )  # fmt: skip
            return self._git(bare, "write-tree", env=index)

    def _remove(self, bare: Path, paths: list[str], index: Mapping[str, str]) -> None:
        """Deletions: `--force-remove` wants a work tree, `--index-info` with mode 0 does not."""
        if paths:
            zero = "0" * 40
            lines = b"".join(
                f"0 {zero}\t{path}\0".encode("utf-8", "surrogateescape") for path in paths
            )
            self._git(bare, "update-index", "-z", "--index-info", env=index, stdin=lines)

    def _modes(self, bare: Path, commit: str) -> dict[str, str]:
        listing = self._run(bare, ["ls-tree", "-r", "-z", "--full-tree", commit])
        modes: dict[str, str] = {}
        for entry in listing.split(b"\0"):
            if entry:
                meta, _, path = entry.partition(b"\t")
                modes[path.decode("utf-8", "surrogateescape")] = meta.split(b" ")[0].decode()
        return modes

    def _create_branch(self, bare: Path, branch: str, commit: str) -> str:
        """Create the branch only if absent; an identical earlier commit is reused."""
        ref = f"refs/heads/{branch}"
        existing = self._ref_target(bare, ref)
        if existing is None:
            try:
                # The all-zero old value makes git refuse if the ref appeared meanwhile.
                self._git(bare, "update-ref", ref, commit, "0" * len(commit))
                return commit
            except ForgeError:
                existing = self._ref_target(bare, ref)
                if existing is None:
                    raise
        if existing == commit or self._same_commit(bare, existing, commit):
            return existing
        raise BranchExists(branch, existing)

    def _same_commit(self, bare: Path, first: str, second: str) -> bool:
        """Same tree, parents, author and message: a retried run, not a different change."""
        fmt = "--format=%T %P%n%an <%ae>%n%B"
        return self._git(bare, "show", "-s", fmt, first) == self._git(
            bare, "show", "-s", fmt, second
        )

    def _ref_target(self, bare: Path, ref: str) -> str | None:
        proc = self._proc(bare, ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"])
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def _has_commit(self, bare: Path, commit: str) -> bool:
        return self._proc(bare, ["cat-file", "-e", f"{commit}^{{commit}}"]).returncode == 0

    def _git(
        self,
        bare: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> str:
        return self._run(bare, list(args), env=env, stdin=stdin).decode().strip()

    def _run(
        self,
        cwd: Path,
        args: list[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> bytes:
        proc = self._proc(cwd, args, env=env, stdin=stdin)
        if proc.returncode != 0:
            stderr = proc.stderr.decode("utf-8", "replace").strip()
            raise ForgeError(f"git {args[0]} failed ({proc.returncode}): {stderr}")
        return proc.stdout

    def _proc(
        self,
        cwd: Path,
        args: list[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run git with no system or user configuration and no hooks."""
        return subprocess.run(  # noqa: S603 - argv built here, never through a shell
            [self._git_path, "-c", "core.hooksPath=/dev/null", *args],
            cwd=cwd,
            env={**self._clean_env(), **(env or {})},
            input=stdin if stdin is not None else b"",
            capture_output=True,
            check=False,
        )

    def _clean_env(self) -> dict[str, str]:
        # Nothing is inherited from the factory's environment: no credentials, no GIT_DIR.
        return {
            "PATH": os.pathsep.join([str(Path(self._git_path).parent), os.defpath]),
            "HOME": str(self.forge_dir),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ATTR_NOSYSTEM": "1",
            "LC_ALL": "C",
        }


def _require_object_id(commit: str) -> None:
    """Full object ids only: a ref name or an option would let the caller steer git."""
    if not _OBJECT_ID.fullmatch(commit):
        raise ForgeError(f"not a full commit id: {commit!r}")
