"""Files the setup phase creates in the tree, kept for the engine and the checks.

A build hook may write a file into the repository while the setup phase installs it: hatch-vcs
and setuptools-scm's `write_to` write `src/<package>/_version.py` during `pip install -e .`,
and the editable install then imports it. The setup phase runs on a throwaway layer, so that
file would be lost and `import <package>` would fail in every later phase.

So, once the setup steps succeed, `collect` takes the regular files the setup layer CREATED
(absent from the base tree and from the engine's layer; never a modified committed file, a
whiteout, a link, or tool output by `harvest.is_excluded`), within `MAX_OUTPUTS` files of at
most `MAX_OUTPUT_BYTES` each and `MAX_TOTAL_BYTES` in all; `store` copies them into the
environment, which is what an image keeps:

    /env/.codefactory/setup-outputs/<path>   each file
    /env/.codefactory/setup-outputs.json     the manifest: {"files": [{"path", "sha256", "size"}]}

`load` reads them back (verified against the manifest) and `place` writes them into a
workspace's engine layer, as regular files owned by the sandbox's user, whenever that layer is
not mounted. Harvest never reports them. Nothing here follows a symbolic link: files are read
with `beneath.read_beneath`, and folders are made and entered one component at a time with
`O_NOFOLLOW` relative to their parent's descriptor; no sandboxed process runs meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from codefactory.sandbox.beneath import BeneathError, kind_beneath, read_beneath
from codefactory.sandbox.errors import ProvisionFailed
from codefactory.sandbox.fstree import files_below, remove_tree
from codefactory.sandbox.harvest import is_excluded

MAX_OUTPUTS = 200
"""The most files kept; more are ignored (sorted by path, the first ones kept)."""
MAX_OUTPUT_BYTES = 1 << 20
"""The largest file kept (1 MiB); a larger one is ignored."""
MAX_TOTAL_BYTES = 16 << 20
"""The most bytes kept in all (16 MiB); files past it are ignored."""
OUTPUTS_DIR = ".codefactory/setup-outputs"
"""Where, below the environment's root, the kept files are stored."""
MANIFEST = ".codefactory/setup-outputs.json"
"""Their manifest, below the environment's root."""
_MANIFEST_BYTES = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Collected:
    """What `collect` kept (path → bytes) and what it ignored, one sentence each."""

    files: dict[str, bytes] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    def log_lines(self) -> str:
        """The setup log's account of the kept and the ignored files."""
        text = ""
        if self.files:
            shown = ", ".join(sorted(self.files)[:10]) + (", …" if len(self.files) > 10 else "")
            text += f"# kept {len(self.files)} file(s) setup created in the tree: {shown}\n"
        return text + "".join(f"# not kept: {why}\n" for why in self.ignored)


def digest(content: bytes) -> str:
    """The sha256 of a kept file, hex."""
    return hashlib.sha256(content).hexdigest()


def collect(setup_upper: Path, *, tree: Path, engine: Path, known: Collection[str]) -> Collected:
    """The regular files below `setup_upper` (the setup layer's upper folder, or a full copy
    of the setup view) that the setup phase created: absent from the base `tree` and from the
    `engine` layer, unless already a setup output (`known` paths). Excluded tool
    output, links, whiteouts and special files are skipped; files past the caps are ignored
    and named in `Collected.ignored`."""
    candidates = []
    for rel, info in files_below(setup_upper):
        if not stat.S_ISREG(info.st_mode) or is_excluded(rel):
            continue
        if kind_beneath(tree, rel) != "missing":
            continue  # committed (or past a committed link): never an output
        if rel not in known and kind_beneath(engine, rel) != "missing":
            continue  # the engine's own file, which setup rewrote
        candidates.append(rel)
    kept = Collected()
    total = 0
    for rel in sorted(candidates):
        if len(kept.files) >= MAX_OUTPUTS:
            kept.ignored.append(f"{len(candidates) - MAX_OUTPUTS} more file(s) past the cap "
                                f"of {MAX_OUTPUTS}, from {rel} on")  # fmt: skip
            break
        try:
            content = read_beneath(setup_upper, rel, max_bytes=MAX_OUTPUT_BYTES)
        except BeneathError as err:
            if err.kind == "file":
                kept.ignored.append(f"{rel}: larger than {MAX_OUTPUT_BYTES} bytes")
            continue
        if total + len(content) > MAX_TOTAL_BYTES:
            kept.ignored.append(f"{rel}: past the cap of {MAX_TOTAL_BYTES} bytes in all")
            continue
        total += len(content)
        kept.files[rel] = content
    return kept


def store(env: Path, files: Mapping[str, bytes], *, owner: tuple[int, int] | None) -> None:
    """Replace the kept files and the manifest in the environment folder `env` (host path)."""
    folder = _ensure_dirs(env, OUTPUTS_DIR.split("/")[:1], owner, replace=True)
    if folder is None:
        raise ProvisionFailed(f"could not make {OUTPUTS_DIR} in the environment {env}")
    os.close(folder)
    # a real folder now; no sandboxed process runs, so nothing swaps it meanwhile
    remove_tree(env / OUTPUTS_DIR)
    entries = []
    for rel, content in sorted(files.items()):
        if not _write(env, f"{OUTPUTS_DIR}/{rel}", content, owner, replace=True):
            raise ProvisionFailed(f"could not store the setup output {rel} in {env}")
        entries.append({"path": rel, "sha256": digest(content), "size": len(content)})
    manifest = json.dumps({"files": entries}, indent=1).encode()
    if not _write(env, MANIFEST, manifest, owner, replace=True):
        raise ProvisionFailed(f"could not write {MANIFEST} in the environment {env}")


def load(env: Path) -> dict[str, bytes]:
    """The kept files stored in `env`, path → bytes (none when it holds no manifest).
    `ProvisionFailed` when the manifest is malformed or a file does not match it."""
    try:
        raw = read_beneath(env, MANIFEST, max_bytes=_MANIFEST_BYTES)
    except BeneathError as err:
        if err.kind == "missing":
            return {}
        raise ProvisionFailed(f"the environment's {MANIFEST} is unreadable: {err}") from err
    try:
        entries = json.loads(raw)["files"]
        wanted = {str(e["path"]): str(e["sha256"]) for e in entries}
    except (ValueError, KeyError, TypeError) as err:
        raise ProvisionFailed(f"the environment's {MANIFEST} is malformed: {err}") from err
    files = {}
    for rel, sha in list(wanted.items())[:MAX_OUTPUTS]:
        if _unsafe(rel):
            raise ProvisionFailed(f"the environment's {MANIFEST} names a bad path: {rel!r}")
        try:
            content = read_beneath(env, f"{OUTPUTS_DIR}/{rel}", max_bytes=MAX_OUTPUT_BYTES)
        except BeneathError as err:
            raise ProvisionFailed(f"the setup output {rel} is unreadable: {err}") from err
        if digest(content) != sha:
            raise ProvisionFailed(f"the setup output {rel} does not match its manifest")
        files[rel] = content
    return files


def place(
    layer: Path,
    files: Mapping[str, bytes],
    *,
    lower: Path | None,
    owner: tuple[int, int] | None,
) -> list[str]:
    """Write `files` into the engine layer `layer` (an unmounted overlay upper folder over
    `lower`, or with `lower` None a plain copy of the workspace), replacing what the engine
    made of them. A file whose folder the engine removed or replaced (a whiteout, a file or a
    link on the way) or that passes a committed link is skipped. Returns the paths placed."""
    placed = []
    for rel, content in sorted(files.items()):
        if _unsafe(rel) or (lower is not None and not _folders_in(lower, rel)):
            continue
        if _write(layer, rel, content, owner, replace=False):
            placed.append(rel)
    return placed


def _unsafe(rel: str) -> bool:
    parts = rel.split("/")
    return (
        rel.startswith("/")
        or "\0" in rel
        or any(p in ("", ".", "..") for p in parts)
        or (is_excluded(rel))
    )


def _folders_in(lower: Path, rel: str) -> bool:
    """Whether every folder on `rel`'s way is a folder in `lower`, or absent from it."""
    parts = rel.split("/")[:-1]
    return all(
        kind_beneath(lower, "/".join(parts[: i + 1])) in ("dir", "missing")
        for i in range(len(parts))
    )


def _ensure_dirs(
    root: Path, parts: list[str], owner: tuple[int, int] | None, *, replace: bool
) -> int | None:
    """A descriptor of the folder `parts` below `root`, made where missing (owned by `owner`);
    an entry on the way that is no folder is replaced when `replace`, else None."""
    here = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            for _ in range(3):  # made, or replaced and made, then entered
                try:
                    below = os.open(part, _DIR_FLAGS, dir_fd=here)
                    break
                except FileNotFoundError:
                    os.mkdir(part, 0o755, dir_fd=here)
                    if owner is not None:
                        os.chown(part, *owner, dir_fd=here, follow_symlinks=False)
                except (NotADirectoryError, OSError):
                    if not replace:
                        return None
                    _remove_entry(here, part)
            else:
                return None
            os.close(here)
            here = below
        found, here = here, -1
        return found
    finally:
        if here != -1:
            os.close(here)


def _remove_entry(folder: int, name: str) -> None:
    st = os.stat(name, dir_fd=folder, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        raise ProvisionFailed(f"a folder stands where a file is needed: {name}")
    os.unlink(name, dir_fd=folder)


def _write(
    root: Path, rel: str, content: bytes, owner: tuple[int, int] | None, *, replace: bool
) -> bool:
    """Write a regular file `rel` below `root` (mode 0644, owned by `owner`), replacing a file,
    link or whiteout there (never a folder); folders on the way per `_ensure_dirs`."""
    *folders, name = rel.split("/")
    folder = _ensure_dirs(root, folders, owner, replace=replace)
    if folder is None:
        return False
    try:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
                return False
            os.unlink(name, dir_fd=folder)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o644, dir_fd=folder)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, 0o644)
            if owner is not None:
                os.fchown(fd, *owner)
        finally:
            os.close(fd)
        return True
    finally:
        os.close(folder)
