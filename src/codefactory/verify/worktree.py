"""A working tree's changes against a base revision, found without running git in it.

`codefactory verify` judges what a developer (or a CI job) has on disk, outside any run:
tracked files that differ from the base (staged or not), deleted ones, and untracked files
the ignore rules do not hide. The repository is untrusted, so no git command takes it as its
repository: the base commit comes from the factory's mirror (`sandbox/mirror.py`), and the
changed paths from git running in that mirror with the working tree as `--work-tree` and a
scratch index holding the base tree. The mirror's config has no filter, diff or textconv
driver and no file-system monitor, and its `info/attributes` unsets every conversion, so the
names a `.gitattributes` gives run nothing and every file is compared byte for byte.
`.gitignore` files are read by git as usual (it never follows a symlinked one) and
`.git/info/exclude` is copied in as data.

Every changed file is then read with `beneath.read_beneath`, never through a symbolic link.
A path that lies past a link (a folder replaced by a link to `/etc`) is gone from the tree
git would commit, so it reads as deleted; a path that is itself a link, a FIFO, a socket or
a device is not carried into the change (the harvester skips them too) and is listed in
`WorkingTree.skipped` with the reason, so a caller can say so.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from codefactory.domain import FileChange
from codefactory.sandbox.beneath import BeneathError, FileTooLarge, kind_beneath, read_beneath
from codefactory.sandbox.errors import ProvisionFailed
from codefactory.sandbox.mirror import Mirror, Mirrors
from codefactory.verify.errors import WorktreeUnreadable

MAX_FILE_BYTES = 100 * 1024 * 1024
"""The largest changed file read (GitHub refuses larger ones too)."""
MAX_EXCLUDE_BYTES = 1024 * 1024
_DELETED_KINDS = frozenset({"missing", "link-in-path", "dir"})


@dataclass(frozen=True, kw_only=True)
class SkippedPath:
    """A changed path that is not carried into the change, and why."""

    path: str
    kind: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class WorkingTree:
    """The base commit, the changed files (content None: deleted) and the paths skipped."""

    base_commit: str
    files: tuple[FileChange, ...]
    skipped: tuple[SkippedPath, ...]


def working_changes(
    repo: Path, base: str, *, mirrors: Mirrors | None = None
) -> tuple[str, tuple[FileChange, ...]]:
    """(the base commit id, the files that differ from it); deleted files have no content."""
    tree = working_tree(repo, base, mirrors=mirrors)
    return tree.base_commit, tree.files


def working_tree(
    repo: Path,
    base: str,
    *,
    mirrors: Mirrors | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> WorkingTree:
    """The working tree of `repo` against `base`, synced through `mirrors` (a throw-away
    mirror when none is given). `ProvisionFailed` for no repository or no such revision,
    `WorktreeUnreadable` when the changes cannot be listed or read."""
    if mirrors is None:
        with tempfile.TemporaryDirectory(prefix="codefactory-mirrors-") as scratch:
            return working_tree(repo, base, mirrors=Mirrors(Path(scratch)))
    mirror = mirrors.sync(repo)  # as given: the mirror judges who controls the path
    repo = repo.resolve()
    commit = mirror.resolve(base)
    if kind_beneath(repo, ".git") not in ("dir", "file"):
        raise WorktreeUnreadable(str(repo), "it has no working tree (a bare repository?)")
    files: list[FileChange] = []
    skipped: list[SkippedPath] = []
    for name in _changed_names(mirror, repo, commit):
        _classify(repo, name, files, skipped, max_file_bytes)
    return WorkingTree(base_commit=commit, files=tuple(files), skipped=tuple(skipped))


def _changed_names(mirror: Mirror, repo: Path, commit: str) -> list[str]:
    """Tracked paths that differ from `commit` and untracked ones not ignored, sorted."""
    with tempfile.TemporaryDirectory(prefix="codefactory-index-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        exclude = Path(scratch) / "exclude"
        exclude.write_bytes(_info_exclude(repo))
        work_tree = f"--work-tree={repo}"
        try:
            mirror.git(work_tree, "read-tree", commit, env=env)
            mirror.git(work_tree, "update-index", "-q", "--refresh", env=env)
            tracked = mirror.git(
                work_tree, "diff-files", "--name-only", "-z", "--ignore-submodules=all", env=env
            )
            untracked = mirror.git(
                work_tree, "ls-files", "--others", "--exclude-standard",
                f"--exclude-from={exclude}", "-z", env=env,
            )  # fmt: skip
        except ProvisionFailed as err:
            raise WorktreeUnreadable(str(repo), str(err)) from err
    return sorted(set(_names(tracked)) | set(_names(untracked)))


def _classify(
    repo: Path,
    name: str,
    files: list[FileChange],
    skipped: list[SkippedPath],
    max_bytes: int,
) -> None:
    """Record one changed path: its content, a deletion, or a skip with the reason."""
    if name.endswith("/"):  # git lists an untracked folder holding its own repository
        reason = "a folder with its own git repository is not carried into a change"
        skipped.append(SkippedPath(path=name.rstrip("/"), kind="repository", reason=reason))
        return
    kind = kind_beneath(repo, name)
    if kind == "file":
        try:
            content = read_beneath(repo, name, max_bytes=max_bytes)
        except FileTooLarge as err:
            raise WorktreeUnreadable(str(repo), str(err)) from err
        except BeneathError as err:  # it changed since we looked: take what it is now
            kind = err.kind
        else:
            files.append(FileChange(path=name, content=content))
            return
    if kind in _DELETED_KINDS:
        files.append(FileChange(path=name, content=None))
    else:
        reason = f"a {kind} is not carried into a change: only regular files are"
        skipped.append(SkippedPath(path=name, kind=kind, reason=reason))


def _info_exclude(repo: Path) -> bytes:
    """The repository's own `.git/info/exclude`, read as data (empty when absent)."""
    try:
        return read_beneath(repo, ".git/info/exclude", max_bytes=MAX_EXCLUDE_BYTES)
    except BeneathError:
        return b""


def _names(output: bytes) -> list[str]:
    return [n.decode("utf-8", "surrogateescape") for n in output.split(b"\0") if n]
