"""Where detection reads a tree's committed files: a workspace (`WorkspaceFiles`) or a git
tree in the factory's mirror (`GitTreeFiles`). Both implement `projects.model.FileSource`.

A symbolic link is read through only while every link on the way stays inside the tree (a
relative target that never climbs above the root); an absolute target, a loop or a climb out
reads as absent, as it would for git's own `core.symlinks=false` checkout of a hostile tree.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import TYPE_CHECKING

from codefactory.sandbox.layout import system_tool
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.port import Phase, Workspace

if TYPE_CHECKING:
    from codefactory.sandbox.mirror import Mirror

_MAX_LINKS = 40  # Linux's MAXSYMLINKS
_MAX_LISTING = 256 << 20
_PRUNED = ("node_modules",)
"""Top-level folders a workspace shows that no commit holds (the JavaScript packages lent
from `/env`)."""


def resolve_in_tree(path: str, links: Mapping[str, str], files: set[str]) -> tuple[str | None, str]:
    """(the regular file `path` names once every symbolic link on the way is followed, '')
    or (None, why not): missing, a folder, a loop, or a link leading outside the tree.
    `links` maps a link's path to its target; `files` holds the tree's regular files (POSIX
    paths relative to the root)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    followed = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if not done:
                return None, "a symbolic link leads outside the repository"
            done.pop()
            continue
        current = "/".join([*done, part])
        target = links.get(current)
        if target is None:
            done.append(part)
            continue
        followed += 1
        if followed > _MAX_LINKS:
            return None, "a loop of symbolic links"
        if target.startswith("/") or not target:
            return None, f"the symbolic link {current} leads outside the repository"
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    resolved = "/".join(done)
    if resolved in files:
        return resolved, ""
    return None, f"{path} is not a file of the repository"


def resolve_inside(path: str, links: Mapping[str, str], files: set[str]) -> str | None:
    """The regular file `path` names inside the tree (`resolve_in_tree`), or None."""
    return resolve_in_tree(path, links, files)[0]


class WorkspaceFiles:
    """The files of a workspace as `phase` shows them: one `find` lists every regular file and
    link (with its target), reads go through `workspace.read_file`."""

    def __init__(self, workspace: Workspace, phase: Phase = Phase.ENGINE) -> None:
        self.workspace = workspace
        self.phase = phase
        self._files: set[str] | None = None
        self._links: dict[str, str] = {}

    def _list(self) -> set[str]:
        if self._files is not None:
            return self._files
        prune = [arg for name in _PRUNED for arg in ("-path", f"./{name}", "-prune", "-o")]
        kinds = ["(", "-type", "f", "-o", "-type", "l", ")"]
        command = [system_tool("find"), ".", "-mindepth", "1", *prune, *kinds,
                   "-printf", r"%y\0%P\0%l\0"]  # fmt: skip
        # a listing of a large tree outgrows a command's default output limit
        limits = Limits(wall_s=60.0, output_bytes=_MAX_LISTING)
        result = self.workspace.exec(command, phase=self.phase, timeout_s=60, limits=limits)
        if not result.ok:
            raise OSError(f"could not list the workspace's files: {result.stderr.strip()}")
        fields = result.stdout.split("\0")
        files: set[str] = set()
        for i in range(0, len(fields) - 2, 3):
            kind, path, target = fields[i : i + 3]
            if kind == "l":
                self._links[path] = target
            else:
                files.add(path)
        self._files = files
        return files

    def paths(self) -> list[str]:
        """Every regular file and symbolic link of the workspace, sorted."""
        return sorted(self._list() | set(self._links))

    def read(self, path: str) -> bytes | None:
        """The bytes of `path`, through links that stay inside the tree; None otherwise."""
        resolved = resolve_inside(path, self._links, self._list())
        if resolved is None:
            return None
        return self.workspace.read_file(resolved, phase=self.phase)

    def is_link(self, path: str) -> bool:
        """Whether `path` itself is a symbolic link of the workspace (not followed)."""
        self._list()
        return _normal(path) in self._links


class GitTreeFiles:
    """The files of `commit`'s tree in the factory's mirror: one `git ls-tree -r`, blobs read
    with `git cat-file --batch` (never a checkout, never a filter or attribute)."""

    def __init__(self, mirror: Mirror, commit: str) -> None:
        self.mirror = mirror
        self.commit = commit
        self._blobs: dict[str, str] | None = None
        self._link_ids: dict[str, str] = {}
        self._links: dict[str, str] | None = None
        self._texts: dict[str, bytes] = {}

    def _list(self) -> dict[str, str]:
        if self._blobs is not None:
            return self._blobs
        out = self.mirror.git("ls-tree", "-r", "-z", "--full-tree", self.commit)
        blobs: dict[str, str] = {}
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, object_id = meta.decode().split()
            path = raw_path.decode("utf-8", "surrogateescape")
            if kind != "blob":
                continue  # a submodule (a commit) holds no file of this tree
            if mode == "120000":
                self._link_ids[path] = object_id
            else:
                blobs[path] = object_id
        self._blobs = blobs
        return blobs

    def _link_targets(self) -> dict[str, str]:
        if self._links is None:
            self._list()
            names = sorted(self._link_ids)
            contents = self._cat([self._link_ids[n] for n in names])
            self._links = {
                n: c.decode("utf-8", "surrogateescape")
                for n, c in zip(names, contents, strict=True)
            }
        return self._links

    def paths(self) -> list[str]:
        """Every regular file and symbolic link of the tree, sorted."""
        return sorted(set(self._list()) | set(self._link_ids))

    def object_id(self, path: str) -> str | None:
        """The blob id of the file `path` names (through links inside the tree), else None."""
        resolved = resolve_inside(path, self._link_targets(), set(self._list()))
        return None if resolved is None else self._list()[resolved]

    def resolved(self, path: str) -> str | None:
        """The regular file `path` names once links are followed, else None."""
        return resolve_inside(path, self._link_targets(), set(self._list()))

    def is_link(self, path: str) -> bool:
        """Whether `path` itself is a symbolic link of the tree (mode 120000; not followed)."""
        self._list()
        return _normal(path) in self._link_ids

    def read(self, path: str) -> bytes | None:
        """The bytes of `path`, through links that stay inside the tree; None otherwise."""
        resolved = self.resolved(path)
        if resolved is None:
            return None
        if resolved not in self._texts:
            self._texts[resolved] = self._cat([self._list()[resolved]])[0]
        return self._texts[resolved]

    def _cat(self, object_ids: list[str]) -> list[bytes]:
        if not object_ids:
            return []
        out = self.mirror.git(
            "cat-file", "--batch", input="".join(f"{o}\n" for o in object_ids).encode()
        )
        contents = []
        for _ in object_ids:
            header, _, out = out.partition(b"\n")
            fields = header.split()
            size = int(fields[2]) if len(fields) == 3 else 0
            contents.append(out[:size])
            out = out[size + 1 :]
        return contents


def _normal(path: str) -> str:
    """`path` as listings spell it: no `./`, no empty or trailing parts."""
    return "/".join(p for p in path.split("/") if p not in ("", "."))


def posix_join(folder: str, relative: str) -> str:
    """`relative` (as a requirements file or tox.ini names it) from `folder`, normalised; may
    start with `..` when it climbs out of the tree."""
    return (
        posixpath.normpath(posixpath.join(folder, relative))
        if folder
        else posixpath.normpath(relative)
    )
