"""Read an engine's change out of a workspace's layers, on the host, without running it.

The overlay upper layer holds every file written (and a 0/0 character device, a whiteout, for
every deleted one), so a change is found without trusting anything inside the workspace.
Nothing here follows a symbolic link: folders are walked through their descriptors
(`os.fwalk`), and every file is read with `beneath.read_beneath` relative to its layer's
root, which refuses a link anywhere on the path even if one is swapped in while we read. A
link committed in the repository (say `etc -> /etc`) is compared as a link, and a path that
passes through one is treated as absent from the base, so the host's files are never read,
listed or compared. A file larger than `MAX_FILE_BYTES` is refused rather than truncated.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Collection
from pathlib import Path

from codefactory.domain import Change, FileChange
from codefactory.sandbox.beneath import BeneathError, kind_beneath, read_beneath
from codefactory.sandbox.errors import UnsupportedChange

MAX_FILE_BYTES = 100 * 1024 * 1024
"""The largest file a change carries (GitHub refuses larger ones too)."""
# Tool output and caches that are never part of a change.
EXCLUDED_DIRS = frozenset(
    {".git", ".codefactory", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".venv"}
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
OPAQUE_XATTR = "trusted.overlay.opaque"


REPOSITORY_CONFIG = ".codefactory/config.toml"
"""The repository config lives in a folder the factory otherwise uses for its own output; it
decides how the change is set up and tested, so a change to it is carried and judged."""


def is_excluded(relative: str) -> bool:
    """Whether a workspace path is tool output rather than part of the change."""
    if relative == REPOSITORY_CONFIG:
        return False
    parts = relative.split("/")
    return any(p in EXCLUDED_DIRS for p in parts) or relative.endswith(EXCLUDED_SUFFIXES)


def _pruned(rel_dir: Path, name: str) -> bool:
    """Whether the walk skips folder `name` of `rel_dir` (the root `.codefactory` is entered
    for the repository config alone)."""
    if rel_dir == Path(".") and name == REPOSITORY_CONFIG.split("/")[0]:
        return False
    return name in EXCLUDED_DIRS


def discard_excluded(upper: Path) -> list[str]:
    """Remove from an engine's overlay upper layer (unmounted) everything `is_excluded`, and
    every symbolic link (a change carries regular files only): the checks then see the base
    tree plus exactly the harvested change, never a stale `.pyc`, a tool cache, a factory file
    or a link the engine left beside it (say `tests/conftest.py` pointing at a changed module),
    nor a whiteout hiding a committed one. Links are never followed. Returns the removed
    paths, sorted."""
    removed: list[str] = []
    for directory, dirnames, filenames, folder in os.fwalk(upper):
        rel_dir = Path(directory).relative_to(upper)
        for name in [*dirnames, *filenames]:
            # a link is never carried into a change either: the checks see the base's entry
            if stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=folder)
                (dirnames if name in dirnames else filenames).remove(name)
                removed.append(str(rel_dir / name))
        for name in list(dirnames):
            rel = str(rel_dir / name)
            if rel != REPOSITORY_CONFIG.split("/")[0] and is_excluded(rel):
                shutil.rmtree(name, dir_fd=folder)
                dirnames.remove(name)
                removed.append(rel)
        for name in filenames:
            rel = str(rel_dir / name)
            if is_excluded(rel):
                os.unlink(name, dir_fd=folder)
                removed.append(rel)
    return sorted(removed)


def harvest_overlay(
    *,
    lower: Path,
    upper: Path,
    max_file_bytes: int = MAX_FILE_BYTES,
    setup_outputs: Collection[str] = (),
) -> Change:
    """Changed files from an overlay upper layer compared with its lower layer;
    `UnsupportedChange` for what a commit cannot carry. `setup_outputs`: paths the setup
    phase created (`setup_outputs.py`), never part of the change, whatever the engine made
    of them."""
    try:
        change = _harvest_overlay(lower=lower, upper=upper, max_file_bytes=max_file_bytes)
    except RecursionError:  # os.fwalk recurses once per level (Python 3.11)
        raise UnsupportedChange(
            "the engine's change nests folders too deep to read (about a thousand levels)"
        ) from None
    return _without(change, setup_outputs)


def _without(change: Change, paths: Collection[str]) -> Change:
    """`change` less the files at `paths`."""
    if not paths:
        return change
    return Change(files=tuple(f for f in change.files if f.path not in paths))


def _harvest_overlay(*, lower: Path, upper: Path, max_file_bytes: int) -> Change:
    files: dict[str, FileChange] = {}
    for directory, dirnames, filenames, folder in os.fwalk(upper):
        rel_dir = Path(directory).relative_to(upper)
        dirnames[:] = [d for d in dirnames if not _pruned(rel_dir, d)]
        if rel_dir != Path(".") and _is_opaque(folder):
            for gone in _files_below(lower, str(rel_dir)):
                # a folder deleted and made again: what it holds again is compared below,
                # only what it no longer holds is gone
                again = kind_beneath(upper, str(rel_dir / gone)) not in _ABSENT_OR_DIR
                if not is_excluded(str(rel_dir / gone)) and not again:
                    files[str(rel_dir / gone)] = FileChange(path=str(rel_dir / gone), content=None)
        for name in dirnames:  # a folder where the base has a file or link: that one is gone
            if kind_beneath(lower, str(rel_dir / name)) not in _ABSENT_OR_DIR:
                files[str(rel_dir / name)] = FileChange(path=str(rel_dir / name), content=None)
        for name in filenames + [d for d in dirnames if _is_whiteout(folder, d)]:
            rel = str(rel_dir / name)
            _require_carriable(rel, folder, name)
            if not is_excluded(rel):
                _record(files, rel=rel, folder=folder, name=name, layers=(lower, upper),
                        max_bytes=max_file_bytes)  # fmt: skip
    return _as_change(files)


def harvest_copy(
    *,
    lower: Path,
    merged: Path,
    max_file_bytes: int = MAX_FILE_BYTES,
    setup_outputs: Collection[str] = (),
) -> Change:
    """Changed files from a full copy compared with the original tree, less `setup_outputs`
    (see `harvest_overlay`)."""
    files: dict[str, FileChange] = {}
    after = set(_files_below(merged, ""))
    for rel in after:
        _require_utf8(rel)
    for rel in after | set(_files_below(lower, "")):
        if is_excluded(rel) or rel in setup_outputs:
            continue
        if rel not in after:
            files[rel] = FileChange(path=rel, content=None)
            continue
        new = _content(merged, rel, max_file_bytes, strict=True)
        if new != _content(lower, rel, max_file_bytes):
            files[rel] = FileChange(path=rel, content=new)
    return _as_change(files)


_ABSENT_OR_DIR = frozenset({"dir", "missing", "link-in-path"})


def _record(
    files: dict[str, FileChange],
    *,
    rel: str,
    folder: int,
    name: str,
    layers: tuple[Path, Path],
    max_bytes: int,
) -> None:
    lower, upper = layers
    if _is_whiteout(folder, name):
        kind = kind_beneath(lower, rel)
        if kind not in _ABSENT_OR_DIR:
            files[rel] = FileChange(path=rel, content=None)
        for gone in _files_below(lower, rel) if kind == "dir" else []:
            files[f"{rel}/{gone}"] = FileChange(path=f"{rel}/{gone}", content=None)
        return
    if not stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
        return  # symlinks and special files are not carried into a change
    content = _content(upper, rel, max_bytes, strict=True)
    if content is not None and _content(lower, rel, max_bytes) != content:
        files[rel] = FileChange(path=rel, content=content)


_SPECIAL = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFBLK: "a device node",
            stat.S_IFCHR: "a device node"}  # fmt: skip


def _require_carriable(rel: str, folder: int, name: str) -> None:
    """`UnsupportedChange` for a name git cannot carry faithfully or a special file the engine
    left (a whiteout, the overlay's mark of a deletion, is neither)."""
    _require_utf8(rel)
    st = os.stat(name, dir_fd=folder, follow_symlinks=False)
    kind = _SPECIAL.get(stat.S_IFMT(st.st_mode))
    if kind is not None and not _is_whiteout(folder, name):
        raise UnsupportedChange(
            f"the engine's change has {kind} at {rel}: only regular files are carried"
        )


def _require_utf8(rel: str) -> None:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(rel)
        raise UnsupportedChange(
            f"the engine's change has a file name that is not valid UTF-8: {shown!r}"
        ) from None


def _is_whiteout(folder: int, name: str) -> bool:
    st = os.stat(name, dir_fd=folder, follow_symlinks=False)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(folder: int) -> bool:
    try:
        return os.getxattr(folder, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def _files_below(root: Path, rel: str) -> list[str]:
    """Files and links below the folder `rel` of `root` (never through a link), relative to
    that folder; none when `rel` is no folder or lies past a link."""
    if kind_beneath(root, rel) != "dir":
        return []
    top = root / rel if rel else root
    found = []
    for directory, dirnames, filenames, _ in os.fwalk(top):
        rel_dir = Path(directory).relative_to(root)
        dirnames[:] = [d for d in dirnames if not _pruned(rel_dir, d)]
        for name in filenames:
            found.append(str((Path(directory) / name).relative_to(top)))
    return found


def _content(root: Path, rel: str, max_bytes: int, *, strict: bool = False) -> bytes | None:
    """The bytes of a regular file below `root`, or None (absent, a link, special, past a
    link). `strict`: a file over `max_bytes` raises `FileTooLarge`; else it reads as None
    (it differs from any file that fits)."""
    try:
        return read_beneath(root, rel, max_bytes=max_bytes)
    except BeneathError as err:
        if strict and err.kind == "file":
            raise
        return None


def _as_change(files: dict[str, FileChange]) -> Change:
    return Change(files=tuple(files[k] for k in sorted(files)))
