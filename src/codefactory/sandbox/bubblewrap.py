"""Bubblewrap sandbox over an overlay (copy-on-write) layer of the repository.

Each workspace is read-only lower layers (the tree at the base commit, no `.git`, and the
virtualenv: both from a pre-warmed image when an image cache is configured) under a per-run
upper layer on a size-capped tmpfs, mounted once per workspace (`layers.py`). Every command
runs as uid 65534 with no capabilities, in new user, PID, IPC, UTS, network and mount
namespaces (`bwrap_args.py`), in its own cgroup, supervised to its end (`supervise.py`):
when `exec` returns, nothing the command started is left. The network is reachable only
through the host-side egress proxy, when policy allows. Without root (no overlay mounts, no
cgroups) the workspace is a plain copy and only rlimits bind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

from codefactory.domain import Change, ExecResult
from codefactory.sandbox.backend import Backend, require_binary
from codefactory.sandbox.cgroups import CgroupRoots, discover
from codefactory.sandbox.egress import PACKAGE_INDEX_HOSTS, EgressListener, EgressPolicy
from codefactory.sandbox.errors import ProvisionFailed
from codefactory.sandbox.execution import Mounts, run_command
from codefactory.sandbox.harvest import harvest_copy, harvest_overlay
from codefactory.sandbox.images import ImageCache, Lease
from codefactory.sandbox.layers import WorkspaceHome, export_tree, sweep_stale
from codefactory.sandbox.layout import CACHE_DIR, ENV_DIR, SANDBOX_PATH, SANDBOX_ROOT, TOOLS_DIR
from codefactory.sandbox.limits import GIB, MIB, LimitHit, Limits
from codefactory.sandbox.port import Phase
from codefactory.sandbox.proxy import EgressProxy
from codefactory.sandbox.setup import DEPENDENCY_FILES, install_dependencies
from codefactory.sandbox.supervise import Outcome

__all__ = [
    "CACHE_DIR",
    "ENV_DIR",
    "SANDBOX_PATH",
    "SANDBOX_ROOT",
    "TOOLS_DIR",
    "BubblewrapSandbox",
    "BubblewrapWorkspace",
    "resolve_commit",
]


class BubblewrapWorkspace:
    """One run's isolated workspace; every method acts through a fresh sandboxed process."""

    def __init__(
        self,
        *,
        run_id: str,
        base_commit: str,
        home: WorkspaceHome,
        mounts: Mounts,
        backend: Backend,
        on_egress: EgressListener | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.run_id = run_id
        self.base_commit = base_commit
        self.home = home
        self.mounts = mounts
        self.backend = backend
        self.overlay = backend.overlay
        self.lease = lease
        self._on_egress = on_egress

    def exec(
        self,
        command: Sequence[str],
        *,
        phase: Phase,
        timeout_s: float = 300.0,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        allow_hosts: Sequence[str] = (),
    ) -> ExecResult:
        chosen = (limits or self.backend.limits).but(wall_s=timeout_s)
        outcome = self._run(command, phase, chosen, stdin, env, allow_hosts)
        return ExecResult(
            command=tuple(command),
            exit_code=outcome.exit_code,
            stdout=outcome.stdout.decode("utf-8", "replace"),
            stderr=outcome.stderr.decode("utf-8", "replace"),
            duration_s=outcome.duration_s,
            timed_out=outcome.limit_hit is LimitHit.WALL_CLOCK,
            limit_hit=outcome.limit_hit.value if outcome.limit_hit else "",
        )

    def read_file(self, path: str) -> bytes | None:
        script = 'test -f "$1" && exec cat -- "$1"'
        outcome = self._run(["sh", "-c", script, "sh", _relative(path)], Phase.ENGINE)
        return outcome.stdout if outcome.exit_code == 0 else None

    def write_file(self, path: str, content: bytes) -> None:
        script = 'mkdir -p -- "$(dirname -- "$1")" && exec cat > "$1"'
        command = ["sh", "-c", script, "sh", _relative(path)]
        outcome = self._run(command, Phase.ENGINE, stdin=content)
        if outcome.exit_code != 0 or outcome.limit_hit:
            hit, err = outcome.limit_hit, outcome.stderr.decode(errors="replace")
            detail = f"the {hit} limit was hit" if hit else err
            raise OSError(f"could not write {path} in the workspace: {detail}")

    def _run(
        self,
        command: Sequence[str],
        phase: Phase,
        limits: Limits | None = None,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        allow_hosts: Sequence[str] = (),
    ) -> Outcome:
        if limits is None:  # file helpers: whole files, not a flood of output
            limits = self.backend.limits.but(wall_s=60.0, output_bytes=1 << 30)
        outcome, attempts = run_command(
            self.backend,
            self.home,
            self.mounts,
            run_id=self.run_id,
            command=command,
            phase=phase,
            limits=limits,
            stdin=stdin,
            env=env,
            allow_hosts=allow_hosts,
        )
        if self._on_egress is not None:
            for attempt in attempts:
                self._on_egress(attempt)
        return outcome

    def changes(self) -> Change:
        if self.overlay:
            return harvest_overlay(lower=self.mounts.tree, upper=self.home.upper)
        return harvest_copy(lower=self.mounts.tree, merged=self.home.merged)

    def installed_dependencies(self) -> list[str] | None:
        """What the image installed, while no dependency file of the workspace has changed;
        None when the setup phase must run."""
        if self.lease is None or not self.overlay:
            return None
        if any(DEPENDENCY_FILES.match(name) for name in os.listdir(self.home.upper)):
            return None
        return list(self.lease.installed)

    def destroy(self) -> None:
        self.home.destroy()
        if self.lease is not None:
            for fd in self.lease.locks:
                os.close(fd)
            self.lease = None


class BubblewrapSandbox:
    """Provisions bubblewrap workspaces under `work_root`; the default backend on Linux."""

    def __init__(
        self,
        work_root: Path,
        cache_dir: Path,
        *,
        python: Path = Path("/usr/bin/python3"),
        max_output_bytes: int = 4_000_000,
        limits: Limits | None = None,
        disk_bytes: int = 2 * GIB,
        tmp_bytes: int = 512 * MIB,
        egress: Mapping[str, EgressPolicy] | None = None,
        images: ImageCache | None = None,
        setup_timeout_s: float = 600.0,
        search_path: str | None = None,
        cgroups: bool = True,
    ) -> None:
        self.work_root = work_root.resolve()
        self.cache_dir = cache_dir.resolve()
        self.python = python
        self.limits = (limits or Limits()).but(output_bytes=max_output_bytes)
        self.disk_bytes = disk_bytes
        self.tmp_bytes = tmp_bytes
        self.egress = (
            dict(egress)
            if egress is not None
            else {Phase.SETUP.value: EgressPolicy(allow=PACKAGE_INDEX_HOSTS)}
        )
        self.images = images
        self.setup_timeout_s = setup_timeout_s
        self.search_path = search_path
        self.use_cgroups = cgroups
        self.overlay = os.geteuid() == 0
        self.proxy = EgressProxy()
        self._backend: Backend | None = None
        self._backend_lock = threading.Lock()

    def backend(self) -> Backend:
        """The host side, checked once: `SandboxUnavailable` names what is missing."""
        with self._backend_lock:
            return self._backend or self._start_backend()

    def _start_backend(self) -> Backend:
        if self._backend is None:
            bwrap = require_binary("bwrap", self.search_path)
            roots = discover() if self.use_cgroups and self.overlay else CgroupRoots({}, None)
            self._backend = Backend(
                bwrap=bwrap,
                overlay=self.overlay,
                python=self.python,
                cache_dir=self.cache_dir,
                limits=self.limits,
                disk_bytes=self.disk_bytes,
                tmp_bytes=self.tmp_bytes,
                egress=self.egress,
                proxy=self.proxy,
                cgroups=roots,
                search_path=self.search_path,
            )
            sweep_stale(self.work_root)
        return self._backend

    def provision(
        self,
        *,
        repo: Path,
        commit: str,
        run_id: str,
        on_egress: EgressListener | None = None,
    ) -> BubblewrapWorkspace:
        backend = self.backend()
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise ProvisionFailed(f"invalid run id for a workspace: {run_id!r}")
        repo = repo.resolve()
        base_commit = resolve_commit(repo, commit)
        lease = None
        if self.images is not None:
            build = partial(self._build_env, run_id=run_id, on_egress=on_egress)
            lease = self.images.lease(repo, base_commit, build)
        home = WorkspaceHome(self.work_root / run_id)
        try:
            home.create(disk_bytes=self.disk_bytes if backend.overlay else None)
            if lease is None:
                export_tree(repo, base_commit, home.lower)
                mounts = Mounts(tree=home.lower, env=home.env_base)
            else:
                mounts = Mounts(tree=lease.tree, env=lease.env)
            _mount(home, mounts, overlay=backend.overlay)
        except BaseException:
            home.destroy()
            for fd in lease.locks if lease else ():
                os.close(fd)
            raise
        return BubblewrapWorkspace(
            run_id=run_id,
            base_commit=base_commit,
            home=home,
            mounts=mounts,
            backend=backend,
            on_egress=on_egress,
            lease=lease,
        )

    def _build_env(
        self, tree: Path, env: Path, *, run_id: str, on_egress: EgressListener | None
    ) -> list[str]:
        """Install a tree's dependencies into an image's empty env folder (SETUP phase)."""
        backend = self.backend()
        home = WorkspaceHome(self.work_root / f"{run_id}.image")
        mounts = Mounts(tree=tree, env=env, env_writable_base=True)
        try:
            home.create(disk_bytes=self.disk_bytes if backend.overlay else None)
            _mount(home, mounts, overlay=backend.overlay)
        except BaseException:
            home.destroy()
            raise
        builder = BubblewrapWorkspace(
            run_id=run_id,
            base_commit="",
            home=home,
            mounts=mounts,
            backend=backend,
            on_egress=on_egress,
        )
        try:
            return install_dependencies(
                builder, python=str(self.python), timeout_s=self.setup_timeout_s
            )
        finally:
            builder.destroy()

    def close(self) -> None:
        """Stop the egress proxy (workspaces are destroyed by their owners)."""
        self.proxy.shutdown()


def _mount(home: WorkspaceHome, mounts: Mounts, *, overlay: bool) -> None:
    """The workspace view: overlays as root, else a plain copy of the tree."""
    if overlay:
        home.mount(tree=mounts.tree, env=None if mounts.env_writable_base else mounts.env)
    else:
        shutil.copytree(mounts.tree, home.merged, symlinks=True, dirs_exist_ok=True)


def resolve_commit(repo: Path, revision: str) -> str:
    """The full commit id `revision` names in `repo`; a clear error when `repo` is no repository."""
    if not repo.is_dir():
        raise ProvisionFailed(f"repository path does not exist or is not a folder: {repo}")
    git_env = {"PATH": os.defpath, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
    result = subprocess.run(  # noqa: S603
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
        env=git_env,
    )
    if result.returncode != 0:
        inside = subprocess.run(  # noqa: S603
            ["git", "-C", str(repo), "rev-parse", "--git-dir"],
            capture_output=True,
            text=True,
            check=False,
            env=git_env,
        )
        if inside.returncode != 0:
            raise ProvisionFailed(f"not a git repository: {repo}")
        raise ProvisionFailed(f"{repo} has no commit {revision!r} (an empty repository?)")
    return result.stdout.strip()


def _relative(path: str) -> str:
    """Refuse absolute paths and `..` so file helpers stay inside the workspace."""
    parts = Path(path).parts
    if Path(path).is_absolute() or ".." in parts or not parts:
        raise ValueError(f"workspace paths must be relative and inside the workspace: {path!r}")
    return path
