"""A working tree's changes against a base revision, read with git on the host.

`codefactory verify` judges what a developer (or a CI job) has on disk, outside any run:
tracked files that differ from the base (staged or not), deleted ones, and untracked files
git does not ignore. git runs with the repository's hooks, file-system monitor, external
diff drivers and text conversions switched off: the repository under judgement must not
get to run a program on the host.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from codefactory.domain import FileChange
from codefactory.sandbox.bubblewrap import resolve_commit
from codefactory.verify.errors import WorktreeUnreadable

_SAFE = (
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "diff.external=",
    "-c",
    "core.untrackedCache=false",
)
_ENV = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


def working_changes(repo: Path, base: str) -> tuple[str, tuple[FileChange, ...]]:
    """(the base commit id, the files that differ from it); deleted files have no content."""
    commit = resolve_commit(repo, base)
    tracked = _git(repo, "diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", commit)
    untracked = _git(repo, "ls-files", "--others", "--exclude-standard", "-z")
    changes = []
    for name in sorted(set(_names(tracked)) | set(_names(untracked))):
        path = repo / name
        if path.is_symlink():
            continue  # symlinks are not carried into a change (the harvester skips them too)
        content = path.read_bytes() if path.is_file() else None
        changes.append(FileChange(path=name, content=content))
    return commit, tuple(changes)


def _git(repo: Path, *args: str) -> bytes:
    result = subprocess.run(  # noqa: S603 - fixed git arguments, no shell
        ["git", *_SAFE, "-C", str(repo), *args],
        capture_output=True,
        check=False,
        env=_ENV,
    )
    if result.returncode != 0:
        reason = result.stderr.decode("utf-8", "replace").strip() or f"exit {result.returncode}"
        raise WorktreeUnreadable(str(repo), f"git {args[0]}: {reason}")
    return result.stdout


def _names(output: bytes) -> list[str]:
    return [n.decode("utf-8", "surrogateescape") for n in output.split(b"\0") if n]
