"""Pre-warmed workspace images: a repository's tree and its installed virtualenv, built once.

    <images>/                                0700: layers are owned by the sandbox's user
    <images>/<repo-key>/repo.json            which repository (its path, and its mirror's)
    <images>/<repo-key>/trees/<tree-id>/     the tree at a commit (git tree id: content-addressed)
    <images>/<repo-key>/envs/<dep-hash>/     the virtualenv for one set of dependency files
        env/  image.json

An image is keyed by the repository and a hash of what decides its environment: the detected
project's inputs at any depth (their git blob ids), the Python it is built with and the setup
plan's commands (`projects.detect`), so two trees with the same inputs share an image, and
editing any input builds a new one while the old one goes stale.
Each layer has a use lock, held shared by every workspace over it for its whole life and
tried exclusively by the garbage collector, so nothing in use is ever removed; builders
queue on a separate build lock, so two first runs build once. The use lock's mtime is the
layer's last use.

Every git command runs in the factory's mirror of the repository (`mirror.py`), never in the
repository itself. A tree is exported owned by the sandbox's user when one is given; an
environment is built into a folder that user owns, and its setuid/setgid bits, devices,
FIFOs and sockets are removed (`modes.py`) before it is marked complete. It also keeps the
files the build's setup phase created in the tree (`setup_outputs.py`, below the env's
`.codefactory/`), which every workspace over the image gets in its engine layer.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from codefactory.projects.detect import detect_project, setup_plan
from codefactory.projects.files import GitTreeFiles
from codefactory.projects.model import Project
from codefactory.projects.requirements_files import decode
from codefactory.sandbox.errors import ProvisionFailed, SetupFailed
from codefactory.sandbox.fstree import remove_tree, tree_size
from codefactory.sandbox.mirror import Mirror, Mirrors
from codefactory.sandbox.modes import normalise
from codefactory.sandbox.pythons import PythonInterpreters
from codefactory.sandbox.setup import self_contained

ENV_LAYOUT = 2
"""What an environment layer holds; raised when that changes, so older images are rebuilt
(2: the files the setup phase created in the tree, `setup_outputs.py`)."""
EnvBuilder = Callable[[Path, Path], list[str]]
"""Installs dependencies: (tree, empty env folder) → the requirement files installed."""


@dataclass(frozen=True, kw_only=True)
class ImageKey:
    """Which image a commit of a repository needs."""

    repo: Path
    repo_key: str
    commit: str
    tree_id: str
    dep_hash: str


@dataclass(frozen=True, kw_only=True)
class Lease:
    """A workspace's hold on its image: the layers and the locks that keep them alive."""

    key: ImageKey
    tree: Path
    env: Path
    installed: tuple[str, ...]
    locks: tuple[int, ...]
    built: bool
    normalised: tuple[str, ...] = ()
    """What `modes.normalise` changed or removed in the environment when it was built."""


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    """One cached layer, for listing and pruning."""

    repo: str
    kind: str
    key: str
    path: Path
    size_bytes: int
    last_used: datetime
    in_use: bool
    current: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "repo": self.repo,
            "kind": self.kind,
            "key": self.key,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "last_used": self.last_used.isoformat(),
            "in_use": self.in_use,
            "current": self.current,
        }


class ImageCache:
    """Builds, leases, lists and prunes images under `root`; `owner` (uid, gid) gets the
    layers the sandbox reads and writes; `mirrors` defaults to `<root>/../mirrors`."""

    def __init__(
        self,
        root: Path,
        *,
        python: str,
        ttl_s: float = 7 * 86400,
        owner: tuple[int, int] | None = None,
        mirrors: Mirrors | None = None,
        interpreters: PythonInterpreters | None = None,
    ) -> None:
        self.root = root.resolve()
        self.python = python
        self.interpreters = interpreters
        self.ttl_s = ttl_s
        self.owner = owner
        self.mirrors = mirrors or Mirrors(self.root.parent / "mirrors")
        self._keys: dict[tuple[Path, str], ImageKey] = {}

    def key(self, mirror: Mirror | Path, commit: str) -> ImageKey:
        """The image `commit` of the mirrored repository needs: keyed by the detected project's
        inputs at any depth (their blob ids), the Python it resolves to, and the setup plan's
        commands; by the whole tree too when an input names what no blob id covers (a local
        path, a repository config's own commands). Read from the mirror's git objects, never
        a checkout; remembered for a full commit id, which names its content for good. A
        repository path is synced into `mirrors` first (until every caller passes a Mirror)."""
        mirror = self._mirror(mirror)
        known = self._keys.get((mirror.path, commit))
        if known is not None:
            return known
        full = commit if _OBJECT_ID.fullmatch(commit) else mirror.resolve(commit)
        tree_id, _ = _top_level(mirror, full)
        files = GitTreeFiles(mirror, full)
        project = detect_project(files)
        digest = hashlib.sha256(f"python {self._python_version(project)}\n".encode())
        digest.update(f"layout {ENV_LAYOUT}\n".encode())
        for step in setup_plan(project):
            digest.update(json.dumps([step.shell, *step.argv]).encode() + b"\n")
        for path in project.inputs:
            digest.update(f"{path} {files.object_id(path)}\n".encode())
        for problem in project.problems:
            digest.update(f"problem {problem}\n".encode())
        if _tree_specific(files, project):
            # an include, a local path, a wheel or a command of the repository's own: what it
            # pulls in is not named above, so the environment belongs to this tree alone (one
            # branch's `./libs/x` must never build the environment another branch reuses)
            digest.update(f"tree {tree_id}\n".encode())
        repo = mirror.source
        repo_key = f"{_slug(repo.name)}-{hashlib.sha256(str(repo).encode()).hexdigest()[:12]}"
        key = ImageKey(
            repo=repo, repo_key=repo_key, commit=full, tree_id=tree_id, dep_hash=digest.hexdigest()
        )
        if full == commit and len(self._keys) < 4096:
            self._keys[(mirror.path, commit)] = key
        return key

    def _python_version(self, project: Project) -> str:
        """The Python the environment is built with: the interpreter the project resolves to
        when the cache has `interpreters`, else the cache's own `python`."""
        if self.interpreters is None:
            return self.python
        wanted = project.python.python if project.python else project.config.python
        source = project.python.python_source if project.python else project.config.source
        return self.interpreters.resolve(wanted, source=source).version

    def lease(
        self,
        mirror: Mirror | Path,
        commit: str,
        build_env: EnvBuilder,
        *,
        owner: tuple[int, int] | None = None,
    ) -> Lease:
        """The layers for `commit`, built first when missing; hold them until released.
        `owner` (uid, gid), else the cache's, gets the layers it builds."""
        owner = owner if owner is not None else self.owner
        mirror = self._mirror(mirror)
        key = self.key(mirror, commit)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        base = self.root / key.repo_key
        _record_repository(base, mirror)
        tree_dir = base / "trees" / key.tree_id
        env_dir = base / "envs" / key.dep_hash
        tree_lock, _ = _held(tree_dir, partial(mirror.export, key.commit, owner=owner))
        try:
            env_lock, built = _held(
                env_dir, lambda tmp: self._build(tree_dir, tmp, build_env, owner)
            )
        except BaseException:
            os.close(tree_lock)
            raise
        meta = json.loads((env_dir / "image.json").read_text())
        if built:
            self.prune(repo_key=key.repo_key, older_than_s=self.ttl_s)
        return Lease(
            key=key,
            tree=tree_dir,
            env=env_dir / "env",
            installed=tuple(meta["installed"]),
            locks=(tree_lock, env_lock),
            built=built,
            normalised=tuple(meta.get("normalised", ())),
        )

    def _mirror(self, mirror: Mirror | Path) -> Mirror:
        return mirror if isinstance(mirror, Mirror) else self.mirrors.sync(mirror)

    def _build(
        self, tree: Path, target: Path, build_env: EnvBuilder, owner: tuple[int, int] | None
    ) -> None:
        env = target / "env"
        env.mkdir()
        if owner is not None:
            os.chown(env, *owner)
        started = time.monotonic()
        installed = build_env(tree, env)
        normalised = normalise(env)  # before it is complete: no later run sees them
        meta = {
            "installed": installed,
            "python": self.python,
            "built_at": datetime.now(UTC).isoformat(),
            "build_seconds": round(time.monotonic() - started, 3),
            "normalised": normalised,
        }
        (target / "image.json").write_text(json.dumps(meta, indent=2))

    def layers(self, *, repo_key: str | None = None) -> list[ImageInfo]:
        """Every cached layer (of one repository when `repo_key` is given), with whether it
        is in use and still current."""
        found: list[ImageInfo] = []
        bases = self.root.glob(repo_key + "/" if repo_key else "*/")
        for base in sorted(p for p in bases if (p / "repo.json").is_file()):
            recorded = json.loads((base / "repo.json").read_text())
            repo = Path(recorded["path"])
            current = self._current(repo, recorded.get("mirror"))
            for kind, folder in (("tree", "trees"), ("env", "envs")):
                for layer in sorted(p for p in (base / folder).glob("*/") if _ready(p)):
                    found.append(_info(repo, kind, layer, layer.name in current))
        return found

    def _current(self, repo: Path, mirror: str | None) -> set[str]:
        """What the source's HEAD needs: synced into the mirror first (which reads the source's
        git folder only as data), else as the mirror last saw it."""
        if repo.is_dir():
            with contextlib.suppress(ProvisionFailed):
                mirror = str(self.mirrors.sync(repo).path)
        if mirror is None:
            return set()
        try:
            key = self.key(Mirror(source=repo, path=Path(mirror)), "HEAD")
        except (ProvisionFailed, SetupFailed):
            return set()
        return {key.tree_id, key.dep_hash}

    def prune(self, *, repo_key: str | None = None, older_than_s: float = 0.0) -> list[ImageInfo]:
        """Remove layers not in use that are stale (not what HEAD needs) or unused for
        `older_than_s` (when given); returns what was removed."""
        removed = []
        now = time.time()
        for info in self.layers(repo_key=repo_key):
            idle = now - info.last_used.timestamp()
            stale = not info.current if not older_than_s else idle > older_than_s
            if stale and not info.in_use and _remove_unless_used(info.path):
                removed.append(info)
        return removed


def _held(folder: Path, make: Callable[[Path], None]) -> tuple[int, bool]:
    """A shared lock on `folder`'s layer, building it first when missing. Builders queue on
    a separate lock: upgrading a shared lock to build would deadlock two first runs."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder.with_name(folder.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    built = False
    try:
        for _ in range(3):  # a prune may remove a layer between its build and our lock
            fcntl.flock(fd, fcntl.LOCK_SH)
            if _ready(folder):
                os.utime(fd)
                return fd, built
            fcntl.flock(fd, fcntl.LOCK_UN)
            built = _build_once(folder, make) or built
        raise ProvisionFailed(f"the image layer {folder} kept disappearing while in use")
    except BaseException:
        os.close(fd)
        raise


def _build_once(folder: Path, make: Callable[[Path], None]) -> bool:
    """Build the layer unless another builder did while we queued; True if we built it."""
    fd = os.open(folder.with_name(folder.name + ".build"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _ready(folder):
            return False
        _build_atomically(folder, make)
        return True
    finally:
        os.close(fd)


def _build_atomically(folder: Path, make: Callable[[Path], None]) -> None:
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    remove_tree(tmp)
    tmp.mkdir()
    try:
        make(tmp)
        (tmp / ".complete").touch()
        remove_tree(folder)
        tmp.rename(folder)
    finally:
        remove_tree(tmp)


def _ready(folder: Path) -> bool:
    return (folder / ".complete").is_file()


def _remove_unless_used(folder: Path) -> bool:
    try:
        fd = os.open(folder.with_name(folder.name + ".lock"), os.O_RDWR)
    except OSError:
        remove_tree(folder)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    try:
        (folder / ".complete").unlink(missing_ok=True)
        remove_tree(folder)
        folder.with_name(folder.name + ".lock").unlink(missing_ok=True)
    finally:
        os.close(fd)
    return True


def _info(repo: Path, kind: str, layer: Path, current: bool) -> ImageInfo:
    lock = layer.with_name(layer.name + ".lock")
    in_use = False
    with contextlib.suppress(OSError):
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            in_use = True
        finally:
            os.close(fd)
    used = lock.stat().st_mtime if lock.exists() else layer.stat().st_mtime
    return ImageInfo(
        repo=str(repo),
        kind=kind,
        key=layer.name,
        path=layer,
        size_bytes=_size(layer),
        last_used=datetime.fromtimestamp(used, UTC),
        in_use=in_use,
        current=current,
    )


def _size(folder: Path) -> int:
    return tree_size(folder)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40] or "repo"


def _record_repository(base: Path, mirror: Mirror) -> None:
    """repo.json names the repository and its mirror (so listing never reads the source)."""
    recorded = {"path": str(mirror.source), "mirror": str(mirror.path)}
    meta = base / "repo.json"
    if not meta.is_file() or json.loads(meta.read_text()) != recorded:
        base.mkdir(parents=True, exist_ok=True)
        # a fresh file renamed into place: a concurrent first run never reads it half-written
        fd, tmp = tempfile.mkstemp(dir=base, prefix=".repo.json.")
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(recorded))
        os.replace(tmp, meta)


def _top_level(mirror: Mirror, commit: str) -> tuple[str, list[tuple[str, str]]]:
    """The tree id of `commit` and its top-level (name, object id) entries: one git call,
    the raw tree read as `<mode> <name>\\0<binary id>` records."""
    out = mirror.git("cat-file", "--batch", input=f"{commit}^{{tree}}\n".encode())
    header, _, rest = out.partition(b"\n")
    tree_id, kind, size = (header.decode().split() + ["", ""])[:3]
    if kind != "tree" or not size.isdigit():
        raise ProvisionFailed(f"{mirror.source} has no tree for {commit}")
    raw, width, entries = rest[: int(size)], len(tree_id) // 2, []
    while raw:
        meta, _, raw = raw.partition(b"\0")
        name = meta.partition(b" ")[2].decode("utf-8", "surrogateescape")
        entries.append((name, raw[:width].hex()))
        raw = raw[width:]
    return tree_id, entries


def _tree_specific(files: GitTreeFiles, project: Project) -> bool:
    """Whether what setup installs depends on more of the tree than the inputs' bytes: a
    requirements file naming a local path, URL or wheel; a lock with a path source other than
    the project itself; the repository config's own setup commands (they may read anything)."""
    if project.config.setup:
        return True
    for path in project.inputs:
        data = files.read(path) or b""
        name = path.rsplit("/", 1)[-1]
        if name.endswith((".txt", ".in")):
            if not self_contained(decode(data), includes_known=True):
                return True
        elif name == "uv.lock" and _LOCAL_UV_SOURCE.search(data):
            return True
        elif name == "poetry.lock" and _LOCAL_POETRY_SOURCE.search(data):
            return True
        elif name == "Pipfile.lock" and _LOCAL_PIPFILE_SOURCE.search(data):
            return True
    return False


_LOCAL_UV_SOURCE = re.compile(rb'\{ (path|directory) = |\{ editable = "(?!\.")')
_LOCAL_POETRY_SOURCE = re.compile(rb'^type = "(directory|file)"', re.M)
_LOCAL_PIPFILE_SOURCE = re.compile(rb'"path":\s*"(?!\.")')
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
