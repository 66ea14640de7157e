"""A workspace's folders on the host: read-only lower layers and a size-capped writable layer.

    <work_root>/<run_id>.<nonce>/  0700, owned by the factory (one per provisioning)
        .lock                      flock held while the workspace lives (stale ones are swept)
        lower/                     the tree at the base commit (unless an image provides it)
        env-base/                  an empty environment (unless an image provides one)
        scratch/                   tmpfs of `disk_bytes`: every byte the sandbox writes
            upper/ work/           the engine layer: the workspace overlay's upper and work
            check-upper/ check-work/  the throwaway layer of checks and setup, over the engine's
            env-upper/ env-work/   the environment overlay's
            package-cache/         the workspace's own package cache (its setup phase's)
        merged/ env-merged/        the two overlays, mounted once, bound into every command

`merged` shows one of two layers. The engine layer is the tree with the engine's writes
(`upper`): the only layer harvested into a change. The throwaway layer puts a fresh
`check-upper` over the engine layer (`lowerdir=upper:tree`, whiteouts and opaque folders of
the engine honoured), so checks and the setup phase see the proposal exactly and whatever
they write is discarded when the engine works again: a test cannot write into the commit.
The writable folders belong to the sandbox's unprivileged host ids (`hostids.py`); every
mount is `nosuid,nodev`.

The mounts live in the host's mount namespace for the workspace's life, so that commands
running at once (the gate runs checks in parallel) share one overlay rather than racing to
mount the same upper layer. `destroy` detaches them; a workspace whose owner died (its lock
is free) is swept, mounts first, by the next sandbox that starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import time
from collections.abc import Mapping
from pathlib import Path

from codefactory.sandbox.errors import ProvisionFailed
from codefactory.sandbox.fstree import remove_tree
from codefactory.sandbox.harvest import discard_excluded
from codefactory.sandbox.setup_outputs import place

MNT_NOSUID, MNT_NODEV, MNT_DETACH = 2, 4, 2
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def mount_tmpfs(target: Path, size_bytes: int) -> None:
    """Mount a private tmpfs of `size_bytes` on `target` (root only)."""
    inodes = max(16_384, size_bytes // 4096)  # inodes cost memory too: cap them with the size
    options = f"size={size_bytes},nr_inodes={inodes},mode=0700".encode()
    flags = MNT_NOSUID | MNT_NODEV
    if _libc.mount(b"codefactory", str(target).encode(), b"tmpfs", flags, options) != 0:
        errno = ctypes.get_errno()
        raise ProvisionFailed(f"could not mount the workspace layer at {target}: "
                              f"{os.strerror(errno)}")  # fmt: skip


def mount_overlay(target: Path, *, lower: Path, upper: Path, work: Path) -> None:
    """Mount an overlay of `lower` under `upper` on `target` (root only)."""
    for path in (*str(lower).split(":"), upper, work):
        if any(c in str(path) for c in ",:\\"):
            raise ProvisionFailed(f"overlay paths may not contain ',', ':' or '\\': {path}")
    options = f"lowerdir={lower},upperdir={upper},workdir={work}".encode()
    flags = MNT_NOSUID | MNT_NODEV
    if _libc.mount(b"overlay", str(target).encode(), b"overlay", flags, options) != 0:
        errno = ctypes.get_errno()
        raise ProvisionFailed(f"could not mount the workspace overlay at {target}: "
                              f"{os.strerror(errno)}")  # fmt: skip


def unmount(target: Path) -> None:
    """Detach a mount (lazily, so a straggling reader cannot keep it alive)."""
    if os.path.ismount(target):
        _libc.umount2(str(target).encode(), MNT_DETACH)


class WorkspaceHome:
    """The host folders of one workspace, and the lock that marks it as alive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None

    @property
    def lower(self) -> Path:
        return self.path / "lower"

    @property
    def env_base(self) -> Path:
        return self.path / "env-base"

    @property
    def scratch(self) -> Path:
        return self.path / "scratch"

    @property
    def upper(self) -> Path:
        return self.scratch / "upper"

    @property
    def work(self) -> Path:
        return self.scratch / "work"

    @property
    def check_upper(self) -> Path:
        return self.scratch / "check-upper"

    @property
    def check_work(self) -> Path:
        return self.scratch / "check-work"

    @property
    def package_cache(self) -> Path:
        """The workspace's own package cache (its setup phase's), on the run's layer."""
        return self.scratch / "package-cache"

    @property
    def check_copy(self) -> Path:
        """The throwaway layer without overlays (not root): a full copy of the engine's."""
        return self.path / "check"

    @property
    def env_upper(self) -> Path:
        return self.scratch / "env-upper"

    @property
    def env_work(self) -> Path:
        return self.scratch / "env-work"

    @property
    def merged(self) -> Path:
        return self.path / "merged"

    @property
    def env_merged(self) -> Path:
        return self.path / "env-merged"

    def create(self, *, disk_bytes: int | None, owner: tuple[int, int] | None = None) -> None:
        """Make the folders and take the lock; `disk_bytes` mounts the capped tmpfs; `owner`
        (uid, gid) gets the folders the sandbox writes."""
        if self.path.exists():
            remove_home(self.path)
        self.path.mkdir(parents=True, mode=0o700)
        self._lock_fd = os.open(self.path / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        for folder in (self.lower, self.env_base, self.scratch, self.merged, self.env_merged):
            folder.mkdir()
        if disk_bytes is not None:
            mount_tmpfs(self.scratch, disk_bytes)
        for folder in (self.upper, self.work, self.env_upper, self.env_work, self.package_cache):
            folder.mkdir()
        if owner is not None:
            for folder in (self.upper, self.env_upper, self.lower, self.env_base, self.merged,
                           self.package_cache):  # fmt: skip
                os.chown(folder, *owner)

    def mount(self, *, tree: Path, env: Path | None) -> None:
        """Mount the workspace overlay over `tree`, and the environment's over `env` if given."""
        mount_overlay(self.merged, lower=tree, upper=self.upper, work=self.work)
        if env is not None:
            mount_overlay(self.env_merged, lower=env, upper=self.env_upper, work=self.env_work)

    def show_throwaway(
        self,
        *,
        tree: Path,
        owner: tuple[int, int] | None,
        outputs: Mapping[str, bytes] | None = None,
    ) -> None:
        """Put a fresh throwaway layer over the engine's in `merged`; what the engine wrote
        that is not part of its change (`harvest.is_excluded`: bytecode, tool caches, factory
        files) is discarded first, so the checks judge the base plus the change alone, and
        the files the setup phase created (`outputs`, path → bytes: `setup_outputs.py`) are
        put back as setup made them."""
        unmount(self.merged)
        discard_excluded(self.upper)
        place(self.upper, outputs or {}, lower=tree, owner=owner)
        for folder in (self.check_upper, self.check_work):
            remove_tree(folder)
            folder.mkdir()
        if owner is not None:
            os.chown(self.check_upper, *owner)
        lower = Path(f"{self.upper}:{tree}")
        try:
            mount_overlay(self.merged, lower=lower, upper=self.check_upper, work=self.check_work)
        except ProvisionFailed:
            self.show_engine(tree=tree, owner=owner)
            raise

    def show_engine(
        self,
        *,
        tree: Path,
        owner: tuple[int, int] | None = None,
        outputs: Mapping[str, bytes] | None = None,
    ) -> None:
        """Discard the throwaway layer and show the engine's again in `merged`, with the
        files the setup phase created (`outputs`) as setup made them."""
        unmount(self.merged)
        for folder in (self.check_upper, self.check_work):
            remove_tree(folder)
        place(self.upper, outputs or {}, lower=tree, owner=owner)
        mount_overlay(self.merged, lower=tree, upper=self.upper, work=self.work)

    def destroy(self) -> None:
        """Detach the mounts, delete every folder, release the lock."""
        remove_home(self.path)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def remove_home(path: Path) -> None:
    for mount_point in ("merged", "env-merged", "scratch"):
        for _ in range(3):  # a layer switch cut short may have stacked two mounts
            unmount(path / mount_point)
    remove_tree(path)


def sweep_stale(work_root: Path, *, min_age_s: float = 60.0) -> list[Path]:
    """Remove workspaces whose owner died (their lock is free); returns what was removed.
    Younger folders are left alone: one may be between its `mkdir` and its `flock`."""
    removed = []
    for home in work_root.glob("*/") if work_root.is_dir() else []:
        try:
            if time.time() - home.stat().st_mtime < min_age_s:
                continue
            fd = os.open(home / ".lock", os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # alive
        finally:
            os.close(fd)
        remove_home(home)
        removed.append(home)
    return removed
