"""Read an engine's change out of a workspace's layers, on the host, without running it.

The overlay upper layer holds every file written (and a 0/0 character device, a whiteout, for
every deleted one), so a change is found without trusting anything inside the workspace.
Nothing here follows a symbolic link: a link committed in the repository (say `etc -> /etc`)
is compared as a link, and a path that passes through one is treated as absent from the
base, so the host's files are never read, listed or compared.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from codefactory.domain import Change, FileChange

# Tool output and caches that are never part of a change.
EXCLUDED_DIRS = frozenset(
    {".git", ".codefactory", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".venv"}
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
OPAQUE_XATTR = "trusted.overlay.opaque"


def is_excluded(relative: str) -> bool:
    """Whether a workspace path is tool output rather than part of the change."""
    parts = relative.split("/")
    return any(p in EXCLUDED_DIRS for p in parts) or relative.endswith(EXCLUDED_SUFFIXES)


def harvest_overlay(*, lower: Path, upper: Path) -> Change:
    """Changed files from an overlay upper layer compared with its lower layer."""
    files: dict[str, FileChange] = {}
    for directory, dirnames, filenames in os.walk(upper):
        here = Path(directory)
        rel_dir = here.relative_to(upper)
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS]
        if rel_dir != Path(".") and _is_opaque(here):
            for gone in _files_below(_in_lower(lower, str(rel_dir))):
                files[str(rel_dir / gone)] = FileChange(path=str(rel_dir / gone), content=None)
        for name in dirnames:  # a folder where the base has a file or link: that one is gone
            base = _in_lower(lower, str(rel_dir / name))
            if base is not None and _lexists(base) and not stat.S_ISDIR(base.lstat().st_mode):
                files[str(rel_dir / name)] = FileChange(path=str(rel_dir / name), content=None)
        for name in filenames + [d for d in dirnames if _is_whiteout(here / d)]:
            _record(files, rel=str(rel_dir / name), upper_path=here / name, lower=lower)
    return _as_change(files)


def harvest_copy(*, lower: Path, merged: Path) -> Change:
    """Changed files from a full copy compared with the original tree."""
    files: dict[str, FileChange] = {}
    after = set(_files_below(merged))
    for rel in after | set(_files_below(lower)):
        if is_excluded(rel):
            continue
        new = merged / rel
        if rel not in after:
            files[rel] = FileChange(path=rel, content=None)
        elif _content(new) != _content(_in_lower(lower, rel)):
            files[rel] = FileChange(path=rel, content=_content(new))
    return _as_change(files)


def _record(files: dict[str, FileChange], *, rel: str, upper_path: Path, lower: Path) -> None:
    if is_excluded(rel):
        return
    mode = upper_path.lstat().st_mode
    if _is_whiteout(upper_path):
        base = _in_lower(lower, rel)
        if base is not None and _lexists(base):
            is_dir = stat.S_ISDIR(base.lstat().st_mode)
            for gone in [f"{rel}/{f}" for f in _files_below(base)] if is_dir else [rel]:
                files[gone] = FileChange(path=gone, content=None)
        return
    if not stat.S_ISREG(mode):
        return  # symlinks and special files are not carried into a change
    content = upper_path.read_bytes()
    if _content(_in_lower(lower, rel)) != content:
        files[rel] = FileChange(path=rel, content=content)


def _is_whiteout(path: Path) -> bool:
    st = path.lstat()
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _in_lower(lower: Path, rel: str) -> Path | None:
    """`lower / rel` if no folder on the way is a symbolic link (or missing); else None."""
    here = lower
    for part in Path(rel).parts[:-1]:
        here = here / part
        try:
            if not stat.S_ISDIR(here.lstat().st_mode):
                return None
        except OSError:
            return None
    return lower / rel


def _lexists(path: Path) -> bool:
    try:
        path.lstat()
    except OSError:
        return False
    return True


def _files_below(root: Path | None) -> list[str]:
    """Regular files and links below `root`, never following a link (`root` included)."""
    if root is None or not _lexists(root) or not stat.S_ISDIR(root.lstat().st_mode):
        return []
    found = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS]
        for name in filenames:
            found.append(str((Path(directory) / name).relative_to(root)))
    return found


def _content(path: Path | None) -> bytes | None:
    if path is None or not _lexists(path) or not stat.S_ISREG(path.lstat().st_mode):
        return None
    return path.read_bytes()


def _as_change(files: dict[str, FileChange]) -> Change:
    return Change(files=tuple(files[k] for k in sorted(files)))
