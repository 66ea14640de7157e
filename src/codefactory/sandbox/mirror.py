"""The factory's own bare mirror of each source repository: host git never runs in a source.

    <root>/                          0700, the factory's own; git's HOME
        <name>-<hash>.git/           the mirror: bare, config the factory wrote, refs/source/*
        <name>-<hash>.view/          what git is shown of the source (below)
        <name>-<hash>.lock           flock held while a sync initialises or fetches

A source repository is untrusted: its `.git/config` (filter, diff and textconv drivers,
`core.fsmonitor`, `include.path`, `core.sshCommand`, `core.alternateRefsCommand`), its hooks
and its `objects/info/alternates` would run programs or reach other repositories if any git
command ran in it. None does. `sync` keeps a view of the source's git folder holding only
what git needs to serve it: a copy of `HEAD`, links to the refs, `packed-refs`, `shallow` and
the object folders (`pack` and the 256 loose-object folders), beside a config the factory
wrote and an empty `objects/info`, so no alternates. `git fetch` from that view copies the
objects into the mirror, where every later command runs: with no system or global config,
no inherited GIT_* variable, hooks off and a HOME of the factory's. Links inside the
source's object store are refused: they would borrow objects from another repository too.

`export` writes a commit's tree as git stores it: `$GIT_DIR/info/attributes` of the mirror
unsets every attribute that rewrites content on the way out (filters, eol, ident, encoding,
export-ignore, export-subst), and the archive is unpacked without following a link.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from codefactory.sandbox.beneath import BeneathError, kind_beneath, list_beneath, read_beneath
from codefactory.sandbox.errors import ProvisionFailed
from codefactory.sandbox.owner import Owner, controller, reading_as

SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.autocrlf=false",
    "core.attributesFile=/dev/null",
    "credential.helper=",
    "protocol.allow=never",
    "protocol.file.allow=always",
    "submodule.recurse=false",
    "fetch.recurseSubmodules=false",
    "gc.autoDetach=false",
    "safe.directory=*",  # the upload-pack that reads a source runs as the source's owner
)
"""`-c` settings of every git command here; they reach a local `upload-pack` child too."""

NEUTRAL_ATTRIBUTES = (
    "* -export-ignore -export-subst -text -eol -filter -ident -working-tree-encoding\n"
)
MIRROR_CONFIG = """\
[core]
\thooksPath = /dev/null
\tfsmonitor = false
\tlogAllRefUpdates = false
[gc]
\tautoDetach = false
[fetch]
\tshowForcedUpdates = false
[uploadpack]
\tallowAnySHA1InWant = true
"""
VIEW_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tbare = true\n\thooksPath = /dev/null\n"
FETCHED = (
    "+refs/heads/*:refs/source/heads/*",
    "+refs/tags/*:refs/source/tags/*",
    "+refs/remotes/*:refs/source/remotes/*",  # so `--base origin/main` resolves
)
DETACHED = "refs/source/detached"
_HEAD = re.compile(rb"(ref: (?P<ref>refs/[^\s\0]+)|(?P<oid>[0-9a-f]{40}|[0-9a-f]{64}))\n?")
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REVISION = re.compile(r"(?P<name>[^~^:\s\\]+?)(?P<suffix>(?:~[0-9]*|\^[0-9]*|\^\{[a-z]*\})*)")
_SMALL = 4096


@dataclass(frozen=True)
class _Layout:
    """Where a source keeps its git data: `HEAD` in `git_dir`, everything else in `common`."""

    git_dir: Path
    common: Path


class Mirrors:
    """The bare mirrors under `root`, one per source repository."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def sync(self, repo: Path) -> Mirror:
        """Fetch `repo`'s branches, tags and HEAD into its mirror now; returns the mirror.
        `ProvisionFailed` when `repo` is no folder, no git repository, or has no commit.
        Pass the path as given (not resolved): who may change what it names decides whose
        rights every read of it is made with (`owner.controller`)."""
        owner, source = _controller(repo)
        try:
            with reading_as(owner):
                if not source.is_dir():
                    raise ProvisionFailed(
                        f"repository path does not exist or is not a folder: {source}"
                    )
                if not owner.is_us and source.stat().st_uid != owner.uid:
                    raise ProvisionFailed(
                        f"{repo} is controlled by uid {owner.uid} but names a folder of uid "
                        f"{source.stat().st_uid}; the factory reads a repository only with "
                        "the rights of whoever controls its path"
                    )
                layout = _locate(source)
        except PermissionError as err:
            raise ProvisionFailed(
                f"{source} belongs to uid {owner.uid}, who cannot read it here ({err.strerror}:"
                f" {err.filename}); the factory reads a repository only with its owner's rights"
            ) from err
        data = self.root.parent
        if _inside(data, source):
            raise ProvisionFailed(
                f"the factory's data folder {data} lies inside the repository {source}: the "
                "repository could plant the factory's own state (its database, advisories, "
                "keys, sandbox ids); run with --data-dir (CODEFACTORY_DATA_DIR) outside it"
            )
        key = f"{_slug(source.name)}-{hashlib.sha256(str(source).encode()).hexdigest()[:12]}"
        mirror = Mirror(source=source, path=self.root / f"{key}.git")
        view = self.root / f"{key}.view"
        with self._locked(self.root / f"{key}.lock"):
            with reading_as(owner):
                if owner.is_us:  # read as root: only root may be able to change what is read
                    _require_sealed(source, layout)
                _check_store(source, layout)
                head = _read_head(source, layout)
                refs = _source_refs(layout.common)
            if not (mirror.path / "HEAD").is_file():
                _init_mirror(mirror)
            os.chmod(mirror.path, 0o700)
            state = _state(head, refs)
            stamp = mirror.path / "codefactory-fetched"
            if stamp.is_file() and stamp.read_text() == state:
                return mirror  # the same refs as the last fetch: it holds their objects
            if owner.is_us:  # root's own repository: through a view of our making
                _refresh_view(view, layout, head, refs)
                remote = view
            else:  # another user's: their upload-pack, as them, reads only what they may
                remote = layout.git_dir
            try:
                mirror._fetch(remote, detached=b"ref: " not in head, owner=owner)
            except ProvisionFailed as err:
                hint = _borrowing_hint(layout)
                raise ProvisionFailed(f"could not fetch from {source}{hint}: {err}") from err
            mirror._point_head(head)
            stamp.write_text(state)
        return mirror

    @contextlib.contextmanager
    def _locked(self, lock: Path) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        # crossable, not listable: a source's owner reads its view here; mirrors stay 0700
        self.root.chmod(0o711)
        fd = os.open(lock, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


@dataclass(frozen=True)
class Mirror:
    """One source repository's mirror: `source` the resolved source path, `path` the bare
    repository. Safe git runs here; nothing here runs git in `source`."""

    source: Path
    path: Path

    def resolve(self, revision: str) -> str:
        """The full commit id `revision` names in the source as last synced: HEAD, a branch,
        a tag, a remote-tracking branch, a (short) commit id, each with `~n`/`^n` after it."""
        candidates = _candidates(revision)
        if candidates:
            lines = "".join(f"{c}^{{commit}}\n" for c in candidates).encode()
            out = self.git("cat-file", "--batch-check=%(objectname) %(objecttype)", input=lines)
            for line in out.decode().splitlines():
                oid, _, kind = line.partition(" ")
                if kind == "commit" and _OBJECT_ID.fullmatch(oid):
                    return oid
        raise ProvisionFailed(f"{self.source} has no commit {revision!r} (an empty repository?)")

    def export(self, commit: str, target: Path, *, owner: tuple[int, int] | None = None) -> None:
        """Write the tree of `commit` into the existing empty folder `target`, as git stores
        it; every created path (and `target`) is owned by `owner` when given."""
        if not _OBJECT_ID.fullmatch(commit):
            raise ProvisionFailed(f"not a full commit id: {commit!r}")
        _ensure_attributes(self.path)
        with tempfile.TemporaryFile() as errors:
            proc = self._popen(["archive", "--format=tar", commit], stderr=errors)
            assert proc.stdout is not None
            try:
                _unpack(proc.stdout, target, owner)
                # drain git's end-of-archive padding: closing early kills it with SIGPIPE
                while proc.stdout.read(1 << 16):
                    pass
            except (OSError, tarfile.TarError, ProvisionFailed) as err:
                proc.kill()
                proc.wait()
                errors.seek(0)
                cause = errors.read().decode("utf-8", "replace").strip() or str(err)
                raise ProvisionFailed(
                    f"could not export {self.source} at {commit}: {cause}"
                ) from err
            finally:
                proc.stdout.close()
            if proc.wait() != 0:
                errors.seek(0)
                cause = errors.read().decode("utf-8", "replace").strip()
                raise ProvisionFailed(f"could not export {self.source} at {commit}: {cause}")

    def git(
        self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> bytes:
        """Run git in the mirror with the safe settings; stdout, or `ProvisionFailed`.
        `env` adds variables (GIT_INDEX_FILE for a scratch index)."""
        result = subprocess.run(  # noqa: S603 - argv built here, never through a shell
            self._argv(args),
            input=input if input is not None else b"",
            capture_output=True,
            check=False,
            cwd=self.path,
            env={**self._env(), **(env or {})},
        )
        if result.returncode != 0:
            cause = result.stderr.decode("utf-8", "replace").strip() or f"exit {result.returncode}"
            raise ProvisionFailed(f"git {args[0]} failed in the mirror of {self.source}: {cause}")
        return result.stdout

    def _fetch(self, remote: Path, *, detached: bool, owner: Owner | None = None) -> None:
        """Bring the remote's refs (and the detached HEAD's commit) into refs/source/. For
        another user's source, its `upload-pack` runs as that `owner`: whatever its config
        or a swapped folder makes it do, it does with their rights."""
        refspecs = [*FETCHED, f"+HEAD:{DETACHED}"] if detached else list(FETCHED)
        flags = ["--quiet", "--prune", "--no-tags", "--no-write-fetch-head", "--update-shallow"]
        if owner is not None and not owner.is_us:
            drop = (f"/usr/bin/setpriv --reuid={owner.uid} --regid={owner.gid} "
                    f"--clear-groups --no-new-privs -- {_git_binary()} "
                    "-c safe.directory='*' -c core.hooksPath=/dev/null upload-pack")  # fmt: skip
            flags.append(f"--upload-pack={drop}")
        self.git("fetch", *flags, "--no-recurse-submodules", str(remote), *refspecs)

    def _point_head(self, head: bytes) -> None:
        """refs/source/HEAD follows the source's HEAD: a symbolic ref to the branch (which
        may not exist yet) or to the detached commit; then the mirror must hold a commit."""
        match = _HEAD.fullmatch(head)
        assert match is not None
        target = DETACHED
        if match["ref"]:
            ref = match["ref"].decode()
            known = ref.startswith(("refs/heads/", "refs/tags/", "refs/remotes/"))
            target = f"refs/source/{ref[5:]}" if known else "refs/source/unknown"
        state = self.path / "codefactory-head"
        if not state.is_file() or state.read_text() != target:
            self.git("symbolic-ref", "refs/source/HEAD", target)
            if target != DETACHED:
                self.git("update-ref", "-d", DETACHED)
            state.write_text(target)
        if not self.git("for-each-ref", "--count=1", "--format=x", "refs/source/"):
            raise ProvisionFailed(f"{self.source} has no commit (an empty repository?)")

    def _argv(self, args: tuple[str, ...] | list[str]) -> list[str]:
        safe = [item for setting in SAFE_CONFIG for item in ("-c", setting)]
        return [_git_binary(), f"--git-dir={self.path}", *safe, *args]

    def _env(self) -> dict[str, str]:
        # Nothing inherited from the factory: no GIT_DIR, no credentials, no proxy settings.
        return {
            "PATH": os.pathsep.join([str(Path(_git_binary()).parent), os.defpath]),
            "HOME": str(self.path.parent),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }

    def _popen(self, args: list[str], *, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - argv built here, never through a shell
            self._argv(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=self.path,
            env=self._env(),
        )


@functools.cache
def _git_binary() -> str:
    git = shutil.which("git", path=os.defpath) or shutil.which("git")
    if git is None:
        raise ProvisionFailed("git is not installed")
    return git


def _locate(source: Path) -> _Layout:
    """The source's git folders, read as data: `.git` (a folder, or a `gitdir:` file) or a
    bare repository, and a `commondir` file for a linked worktree."""
    if not source.is_dir():
        raise ProvisionFailed(f"repository path does not exist or is not a folder: {source}")
    dot = source / ".git"
    if dot.is_dir():
        git_dir = dot
    elif dot.is_file():
        git_dir = _pointer(source, ".git", b"gitdir: ")
    elif all(kind_beneath(source, n) == k for n, k in _BARE):
        git_dir = source
    else:
        raise ProvisionFailed(f"not a git repository: {source}")
    common = git_dir
    if kind_beneath(git_dir, "commondir") == "file":
        common = _pointer(git_dir, "commondir", b"")
    for folder in {git_dir.resolve(), common.resolve()}:
        _require_same_owner(source, folder)
    if kind_beneath(common, "reftable") == "dir":
        raise ProvisionFailed(f"{source} keeps its refs in a reftable, which is not supported")
    if kind_beneath(common, "refs") != "dir" or kind_beneath(common, "objects") != "dir":
        raise ProvisionFailed(f"not a git repository: {source}")
    return _Layout(git_dir=git_dir, common=common)


_BARE = (("HEAD", "file"), ("objects", "dir"), ("refs", "dir"))


def _require_same_owner(source: Path, git_folder: Path) -> None:
    """A `.git` link, a `gitdir:` file or a `commondir` may point anywhere; the factory reads
    as root, so it follows one only to a folder the repository's own owner owns. Otherwise a
    repository could make the factory copy another user's repository into a workspace."""
    owner, found = source.stat().st_uid, git_folder.stat().st_uid
    if found != owner:
        raise ProvisionFailed(
            f"{source}: its git folder {git_folder} belongs to uid {found}, not to the "
            f"repository's owner (uid {owner}); the factory does not follow such a pointer"
        )


def _pointer(folder: Path, name: str, prefix: bytes) -> Path:
    """The folder a `.git` or `commondir` file names (relative to `folder` when relative)."""
    try:
        text = read_beneath(folder, name, max_bytes=_SMALL).strip()
    except BeneathError as err:
        raise ProvisionFailed(f"not a git repository: {folder} ({err})") from err
    if not text.startswith(prefix):
        raise ProvisionFailed(f"not a git repository: {folder} ({name} is not a git pointer)")
    target = folder / os.fsdecode(text[len(prefix) :])
    if not target.is_dir():
        raise ProvisionFailed(f"not a git repository: {folder} ({name} names no folder)")
    return target.resolve()


def _check_store(source: Path, layout: _Layout) -> None:
    """Refuse links in the object store: each would lend another repository's objects."""
    for folder in ("objects", "objects/pack"):
        try:
            entries = list_beneath(layout.common, folder)
        except BeneathError as err:
            if folder == "objects/pack" and err.kind == "missing":
                continue
            raise ProvisionFailed(f"{source}: {folder} is not a folder ({err.kind})") from err
        for name, kind in entries:
            if kind == "symlink":
                raise ProvisionFailed(
                    f"{source}: {folder}/{name} is a symbolic link; the factory fetches only "
                    "objects the repository holds itself"
                )


def _require_sealed(source: Path, layout: _Layout) -> None:
    """A repository the factory reads as root must be one only root can change: every folder
    of its git data (objects and each of its fan-out folders, packs, refs, the git folders
    themselves) a real folder of root's that nobody else may write. Otherwise a user who may
    write one (a `git init --shared=group` repository) could plant links to another
    repository's objects or refs between any check and the read."""
    folders = [layout.git_dir, layout.common, layout.common / "objects"]
    for top in ("objects", "refs"):
        stack = [layout.common / top]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                    folders.append(Path(entry.path))
    for folder in folders:
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
            raise ProvisionFailed(
                f"{source}: {folder} may be changed by a user other than root (owner uid "
                f"{info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}); a repository read as root "
                "must be root's alone (or belong to the one user it is read for)"
            )


def _borrowing_hint(layout: _Layout) -> str:
    if kind_beneath(layout.common, "objects/info/alternates") != "file":
        return ""
    return (
        " (its objects/info/alternates is ignored: objects borrowed from another repository "
        "are never fetched; `git repack -a -d` there makes it hold its own)"
    )


def _read_head(source: Path, layout: _Layout) -> bytes:
    try:
        head = read_beneath(layout.git_dir, "HEAD", max_bytes=_SMALL)
    except BeneathError as err:
        raise ProvisionFailed(f"not a git repository: {source} (HEAD: {err.kind})") from err
    if not _HEAD.fullmatch(head):
        raise ProvisionFailed(f"{source}: HEAD names neither a branch nor a commit")
    return head


def _init_mirror(mirror: Mirror) -> None:
    """A fresh bare repository with the factory's config, made aside and renamed in."""
    tmp = mirror.path.with_name(f".{mirror.path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        subprocess.run(  # noqa: S603 - argv built here
            [_git_binary(), "init", "--quiet", "--bare", "--template=", str(tmp)],
            capture_output=True,
            check=True,
            env=Mirror(source=mirror.source, path=tmp)._env(),
        )
        with (tmp / "config").open("a") as config:
            config.write(MIRROR_CONFIG)
        _ensure_attributes(tmp)
        tmp.rename(mirror.path)
    except (OSError, subprocess.CalledProcessError) as err:
        raise ProvisionFailed(f"could not create the mirror {mirror.path}: {err}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ensure_attributes(git_dir: Path) -> None:
    """`info/attributes` outranks every `.gitattributes` of the tree (gitattributes(5)): the
    neutral line wins over a tree's `tests/ export-ignore` at any depth. Rewritten when it
    differs, so a mirror made by an older factory gets today's list."""
    attributes = git_dir / "info" / "attributes"
    if not attributes.is_file() or attributes.read_text() != NEUTRAL_ATTRIBUTES:
        attributes.parent.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=attributes.parent, delete=False) as tmp:
            tmp.write(NEUTRAL_ATTRIBUTES)
        os.replace(tmp.name, attributes)


def _refresh_view(view: Path, layout: _Layout, head: bytes, refs: tuple[bytes, bytes]) -> None:
    """Rebuild the view when the source's git folder moved; always copy its HEAD and refs.
    World-readable: the source's owner reads it (everything in it came from the source)."""
    marker = view / "codefactory-source"
    where = f"{layout.common}\n"
    if not marker.is_file() or marker.read_text() != where:
        shutil.rmtree(view, ignore_errors=True)
        objects = view / "objects"
        (objects / "info").mkdir(parents=True)
        for folder in (view, objects, objects / "info"):
            folder.chmod(0o755)
        (view / "config").write_text(VIEW_CONFIG)
        for name in ["pack", *(f"{i:02x}" for i in range(256))]:
            (objects / name).symlink_to(layout.common / "objects" / name)
        marker.write_text(where)
    packed, shallow = refs
    _write_if_changed(view / "packed-refs", packed)
    (view / "refs").mkdir(exist_ok=True, mode=0o755)
    _write_if_changed(view / "shallow", shallow)
    if not (view / "HEAD").is_file() or (view / "HEAD").read_bytes() != head:
        (view / "HEAD.tmp").write_bytes(head)
        (view / "HEAD.tmp").chmod(0o644)
        (view / "HEAD.tmp").rename(view / "HEAD")


_OBJECT = rb"[0-9a-f]{40}|[0-9a-f]{64}"
_REF_NAME = rb"refs/[^\s\0]+"
_LOOSE_REF = re.compile(rb"(?P<oid>" + _OBJECT + rb")\n?|ref: (?P<target>" + _REF_NAME + rb")\n?")
_PACKED_REF = re.compile(rb"(?P<oid>" + _OBJECT + rb") (?P<name>" + _REF_NAME + rb")")
_MAX_LISTING = 64 << 20


def _state(head: bytes, refs: tuple[bytes, bytes]) -> str:
    """A digest of what a fetch brings: the source's HEAD, refs and shallow list."""
    digest = hashlib.sha256()
    for part in (head, *refs):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _controller(repo: Path) -> tuple[Owner, Path]:
    """Whose rights the source at `repo` is read with: the user who may change what the
    path names. Walks the path as given, link by link: a folder on the way that a user
    other than root owns (or may write, in a sticky folder: owns the entry) hands control
    to that user, and a link is followed with control kept; a folder that several users may
    write (no sticky bit) is refused. Root's own, untouched path: its final folder's owner."""
    try:
        return controller(repo)
    except FileNotFoundError:
        raise ProvisionFailed(
            f"repository path does not exist or is not a folder: {repo}"
        ) from None
    except (OSError, ValueError) as err:
        raise ProvisionFailed(f"{repo}: {err}") from err


def _source_refs(common: Path) -> tuple[bytes, bytes]:
    """The source's refs as data, never as links (git would follow a ref that is a symbolic
    link to any host file, and echo its text in an error): loose refs and `packed-refs`
    merged into one `packed-refs` listing (one file for the view, not one per ref), and the
    `shallow` list. A ref that is a link, or holds anything but an object id, is left out,
    and so are symbolic refs inside `refs/` (HEAD is copied on its own)."""
    packed = _packed_refs(common)
    stack = ["refs"]
    while stack:
        folder = stack.pop()
        try:
            entries = list_beneath(common, folder)
        except BeneathError:
            continue
        for name, kind in entries:
            relative = f"{folder}/{name}"
            if kind == "dir":
                stack.append(relative)
            elif kind == "file":
                found = _LOOSE_REF.fullmatch(_read_small(common, relative))
                if found is not None and found["oid"]:
                    packed[os.fsencode(relative)] = found["oid"]  # a loose ref wins
    listing = b"".join(oid + b" " + name + b"\n" for name, oid in sorted(packed.items()))
    shallow = _read_small(common, "shallow", _MAX_LISTING)
    ok = all(re.fullmatch(_OBJECT, line) for line in shallow.splitlines())
    return listing, shallow if ok else b""


def _packed_refs(common: Path) -> dict[bytes, bytes]:
    refs: dict[bytes, bytes] = {}
    for line in _read_small(common, "packed-refs", _MAX_LISTING).splitlines():
        found = _PACKED_REF.fullmatch(line)
        if found is not None:
            refs[found["name"]] = found["oid"]
    return refs  # peeled (^) and header lines are git's to recompute


def _read_small(root: Path, relative: str, max_bytes: int = _SMALL) -> bytes:
    try:
        return read_beneath(root, relative, max_bytes=max_bytes)
    except BeneathError:
        return b""


def _write_if_changed(path: Path, data: bytes) -> None:
    if not data:
        path.unlink(missing_ok=True)
    elif not path.is_file() or path.read_bytes() != data:
        path.with_name(path.name + ".tmp").write_bytes(data)
        path.with_name(path.name + ".tmp").chmod(0o644)
        path.with_name(path.name + ".tmp").rename(path)


def _candidates(revision: str) -> list[str]:
    """The names under refs/source/ that `revision` may mean, in git's order of preference."""
    match = _REVISION.fullmatch(revision)
    if match is None or revision.startswith("-") or "@{" in revision or ".." in revision:
        return []
    name, suffix = match["name"], match["suffix"]
    if name in ("HEAD", "@"):
        return [f"refs/source/HEAD{suffix}"]
    refs: list[str] = []
    if name.startswith(("refs/heads/", "refs/tags/", "refs/remotes/")):
        refs = [f"refs/source/{name[5:]}"]
    elif not name.startswith("refs/"):
        refs = [f"refs/source/{kind}/{name}" for kind in ("tags", "heads", "remotes")]
        refs.append(f"refs/source/remotes/{name}/HEAD")
    found = [f"{ref}{suffix}" for ref in refs]
    if re.fullmatch(r"[0-9a-f]{4,64}", name):
        full = _OBJECT_ID.fullmatch(name) is not None
        found = [revision, *found] if full else [*found, revision]
    return found


MAX_FILE_BYTES = 100 * 1024 * 1024
"""The largest file a workspace's tree may hold (forges refuse larger ones too)."""
MAX_TREE_BYTES = 2 * 1024 * 1024 * 1024
"""The most file bytes one exported tree may hold on the host."""
ENTRY_BYTES = 4096
"""What each entry (file, folder, link) counts at least against `MAX_TREE_BYTES`: 400,000
empty files from a 288 kB repository must not exhaust the host's inodes (at most ~524,000
entries per tree)."""


def _unpack(stream: IO[bytes], target: Path, owner: tuple[int, int] | None) -> None:
    """Unpack `git archive` output into `target`: only folders, files and links, each made
    new (`O_EXCL`) inside a folder this export made, so nothing is written through a link."""
    made = {b""}
    root = os.fsencode(target)
    total = 0
    if owner is not None:
        os.chown(target, *owner)
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            # sizes come from each header, before a byte is written: a few MB of compressed
            # history must not unpack into gigabytes on the host
            total += max(member.size, ENTRY_BYTES)  # an empty file costs an inode and a block
            if member.size > MAX_FILE_BYTES:
                raise ProvisionFailed(
                    f"the tree holds {member.name!r} of {member.size:,} bytes, more than "
                    f"{MAX_FILE_BYTES:,} (the largest file a forge accepts)"
                )
            if total > MAX_TREE_BYTES:
                raise ProvisionFailed(
                    f"the tree holds more than {MAX_TREE_BYTES:,} bytes of files (an entry "
                    f"counts at least {ENTRY_BYTES:,}): too large to export for a workspace"
                )
            name = os.fsencode(member.name).rstrip(b"/")
            parent, _, _ = name.rpartition(b"/")
            if not _safe_name(name) or parent not in made:
                raise ProvisionFailed(f"the tree holds an unsafe path: {member.name!r}")
            path = os.path.join(root, name)
            if member.isdir():
                os.mkdir(path, 0o700)
                _finish(path, 0o755, owner)
                made.add(name)
            elif member.isreg():
                _write_file(archive, member, path, owner)
            elif member.issym():
                os.symlink(os.fsencode(member.linkname), path)
                if owner is not None:
                    os.lchown(path, *owner)
            else:
                raise ProvisionFailed(f"the tree holds an unexpected entry: {member.name!r}")


def _safe_name(name: bytes) -> bool:
    parts = name.split(b"/")
    return all(p not in (b"", b".", b"..") and p.lower() != b".git" for p in parts)


def _write_file(
    archive: tarfile.TarFile, member: tarfile.TarInfo, path: bytes, owner: tuple[int, int] | None
) -> None:
    mode = 0o755 if member.mode & 0o100 else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        content = archive.extractfile(member)
        assert content is not None
        while chunk := content.read(1 << 20):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)  # after chown, and never a setuid or setgid bit
        os.utime(fd, (member.mtime, member.mtime))
    finally:
        os.close(fd)


def _finish(path: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        os.chown(path, *owner, follow_symlinks=False)
    os.chmod(path, mode, follow_symlinks=True)  # a folder this export just made


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40] or "repo"


def _inside(folder: Path, repository: Path) -> bool:
    """Whether `folder` (or the nearest of its parents that exists) is `repository` or lies
    below it, by path and by device and inode (a bind mount or a second name of the same
    folder is caught too)."""
    if folder == repository or repository in folder.parents:
        return True
    try:
        target = os.stat(repository)
    except OSError:
        return False
    for candidate in (folder, *folder.parents):
        try:
            if os.path.samestat(os.stat(candidate), target):
                return True
        except OSError:
            continue
    return False
