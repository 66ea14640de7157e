"""Workspace paths as policy must read them: one normal spelling per file (`normal_path`),
and the paths a unified diff touches in every header form git understands (`---`/`+++`,
`diff --git a/X b/Y`, `rename from/to`, `copy from/to`), refusing what cannot be read
plainly (C-quoted names), so a tool can never act on a path the tool gate was not asked
about. `git apply --numstat -z` then confirms a patch's paths before it is applied.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

_DIFF_GIT = re.compile(r"^diff --git (?P<a>\S+) (?P<b>\S+)$")
_NAMED = ("rename from ", "rename to ", "copy from ", "copy to ")


class UnreadablePatch(ValueError):
    """A patch whose paths cannot be read without ambiguity."""


class PathNotAllowed(ValueError):
    """A path that is not a plain path inside the workspace."""


def normal_path(path: str, *, allow_root: bool = False) -> str:
    """`path` in its one normal spelling relative to the workspace root (`./a//b` → `a/b`,
    surrounding blanks dropped): what a tool acts on and what policy is asked about.

    Raises `PathNotAllowed` (saying why) for an empty, absolute, `~` or `..` path, a NUL
    byte, and the root itself unless `allow_root`."""
    text = path.strip()
    pure = PurePosixPath(text)
    if not text or "\0" in text or pure.is_absolute() or text.startswith("~"):
        raise PathNotAllowed(
            f"path {path!r} is not allowed: give a path relative to the workspace root, "
            "such as 'src/app.py'"
        )
    if ".." in pure.parts:
        raise PathNotAllowed(f"path {path!r} is not allowed: '..' would leave the workspace")
    normal = str(pure)
    if normal == "." and not allow_root:
        raise PathNotAllowed(f"path {path!r} names the workspace root, not a file")
    return normal


def _strip_prefix(name: str) -> str:
    return name[2:] if name.startswith(("a/", "b/")) else name


def patch_paths(patch: str) -> list[str]:
    """Every workspace path `patch` names, in order of first mention, `/dev/null` left out.

    Raises `UnreadablePatch` for C-quoted names (`"a/with space"`) and `diff --git` lines
    that do not split into two names: such a patch is refused rather than guessed at."""
    paths: list[str] = []
    for line in patch.splitlines():
        names: list[str] = []
        if line.startswith(("--- ", "+++ ")):
            names = [line[4:].split("\t", 1)[0].rstrip()]
        elif line.startswith("diff --git "):
            match = _DIFF_GIT.match(line)
            if match is None:
                raise UnreadablePatch(f"cannot read the paths of {line!r}")
            names = [match["a"], match["b"]]
        elif line.startswith(_NAMED):
            names = ["b/" + line.split(" ", 2)[2]]
        for name in names:
            if name.startswith('"'):
                raise UnreadablePatch(f"quoted path names are not accepted: {line!r}")
            if name and name != "/dev/null":
                paths.append(_strip_prefix(name))
    return list(dict.fromkeys(paths))


def numstat_paths(output: str) -> list[str]:
    """The paths of `git apply --numstat -z` output: `added\\tdeleted\\tpath\\0`, or for a
    rename or copy `added\\tdeleted\\t\\0old\\0new\\0`."""
    fields = output.split("\0")
    paths: list[str] = []
    index = 0
    while index < len(fields) and fields[index]:
        _, _, path = fields[index].split("\t", 2)
        if path:
            paths.append(path)
            index += 1
        else:  # a rename or copy: the two names follow as their own fields
            paths.extend(fields[index + 1 : index + 3])
            index += 3
    return paths
