"""Walk, measure and remove host folders a sandboxed command wrote, however deep.

Python 3.11's `os.walk`, `os.fwalk` and `shutil.rmtree` recurse once per folder level, so a
command that leaves a folder chain a thousand levels deep made them raise `RecursionError`
in the factory. These walk with an explicit stack, never follow a link, and never leave the
file system they start on.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path


def files_below(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to `root`, lstat) of every entry below `root` that is not a folder."""
    stack = [""]
    while stack:
        relative = stack.pop()
        try:
            entries = list(os.scandir(root / relative if relative else root))
        except OSError:
            continue
        for entry in entries:
            name = f"{relative}/{entry.name}" if relative else entry.name
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                stack.append(name)
            else:
                yield name, info


def tree_size(root: Path) -> int:
    """Bytes of every file below `root` (links counted as themselves)."""
    return sum(info.st_size for _, info in files_below(root))


def remove_tree(path: Path) -> None:
    """Delete `path` and everything below it, on its own file system only; quiet when it is
    already gone. coreutils' `rm` walks iteratively (fts), at any depth."""
    if not os.path.lexists(path):
        return
    subprocess.run(  # noqa: S603 - fixed argv
        ["/usr/bin/rm", "-rf", "--one-file-system", "--", str(path)],
        capture_output=True,
        check=False,
    )
