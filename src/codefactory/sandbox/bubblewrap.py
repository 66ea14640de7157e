"""Bubblewrap sandbox over an overlay (copy-on-write) layer of the repository.

Each workspace is read-only lower layers (the tree at the base commit, no `.git`, and the
virtualenv: both from a pre-warmed image when an image cache is configured) under a per-run
upper layer on a size-capped tmpfs, mounted once per workspace (`layers.py`). Engine
commands write the engine layer, the only one harvested; setup and check commands run on a
throwaway layer over it, discarded when the engine works again. Every command runs as an
unprivileged host uid with no capabilities and a seccomp filter, in new PID, IPC, UTS,
network and mount namespaces (`bwrap_args.py`, `hostids.py`), in its own cgroup, supervised
to its end (`supervise.py`): when `exec` returns, nothing the command started is left. The
network is reachable only through the host-side egress proxy, when policy allows. Without
root (no overlay mounts, no cgroups) the workspace is a plain copy and only rlimits bind.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

from codefactory.domain import Change, ExecResult
from codefactory.sandbox.backend import Backend, require_binary
from codefactory.sandbox.binds import read_only_binds
from codefactory.sandbox.cgroups import CgroupRoots, discover
from codefactory.sandbox.egress import PACKAGE_INDEX_HOSTS, EgressListener, EgressPolicy
from codefactory.sandbox.errors import ProvisionFailed
from codefactory.sandbox.execution import Mounts, run_command
from codefactory.sandbox.fstree import files_below, remove_tree
from codefactory.sandbox.harvest import harvest_copy, harvest_overlay
from codefactory.sandbox.hostids import HostIds, IdTable, host_id_range, passwd_lines
from codefactory.sandbox.images import ImageCache, Lease
from codefactory.sandbox.layers import WorkspaceHome, sweep_stale
from codefactory.sandbox.layout import CACHE_DIR, ENV_DIR, SANDBOX_PATH, SANDBOX_ROOT, SH, TOOLS_DIR
from codefactory.sandbox.limits import GIB, MIB, LimitHit, Limits
from codefactory.sandbox.mirror import Mirrors
from codefactory.sandbox.modes import normalise
from codefactory.sandbox.port import Phase
from codefactory.sandbox.proxy import EgressProxy
from codefactory.sandbox.pythons import PythonInterpreters
from codefactory.sandbox.setup import dependency_files, install_dependencies
from codefactory.sandbox.setup_outputs import collect, digest, load, place, store
from codefactory.sandbox.supervise import Outcome

__all__ = [
    "CACHE_DIR",
    "ENV_DIR",
    "SANDBOX_PATH",
    "SANDBOX_ROOT",
    "TOOLS_DIR",
    "BubblewrapSandbox",
    "BubblewrapWorkspace",
]


class Layer(enum.Enum):
    """What `/workspace` shows: the engine's writes, or a throwaway layer over them."""

    ENGINE = "engine"
    SETUP = "setup"
    CHECK = "check"


PHASE_LAYERS = {Phase.ENGINE: Layer.ENGINE, Phase.SETUP: Layer.SETUP, Phase.CHECK: Layer.CHECK}
"""Only the engine writes what is harvested. Setup and checks each get a fresh throwaway
layer whenever the phase changes: what a build backend writes during setup (a rewritten
source file, a deleted pin file) never reaches the checks that judge the change."""


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
        outputs: Mapping[str, bytes] | None = None,
    ) -> None:
        """`outputs`: the files the setup phase created in the tree (path → bytes), already
        placed in the engine layer (`setup_outputs.py`)."""
        self.run_id = run_id
        self.base_commit = base_commit
        self.home = home
        self.mounts = mounts
        self.backend = backend
        self.overlay = backend.overlay
        self.lease = lease
        self._on_egress = on_egress
        self._layer = Layer.ENGINE
        self._outputs = dict(outputs or {})
        self._running = 0
        self._layer_changed = threading.Condition()

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
        mounts: Mapping[str, Path] | None = None,
        resolve: Mapping[str, str] | None = None,
    ) -> ExecResult:
        chosen = (limits or self.backend.limits).but(wall_s=timeout_s)
        binds = read_only_binds(mounts)
        self.backend.policy(phase, allow_hosts, resolve)  # refuses a bad entry before running
        outcome = self._run(
            command, phase, chosen, stdin, env, allow_hosts, resolve=resolve, binds=binds
        )
        return ExecResult(
            command=tuple(command),
            exit_code=outcome.exit_code,
            stdout=outcome.stdout.decode("utf-8", "replace"),
            stderr=outcome.stderr.decode("utf-8", "replace"),
            duration_s=outcome.duration_s,
            timed_out=outcome.limit_hit is LimitHit.WALL_CLOCK,
            limit_hit=outcome.limit_hit.value if outcome.limit_hit else "",
        )

    def read_file(self, path: str, *, phase: Phase = Phase.ENGINE) -> bytes | None:
        """Read a file as the phase's layer shows it (a check reads its own output)."""
        script = 'test -f "$1" && exec /usr/bin/cat -- "$1"'
        outcome = self._run([SH, "-c", script, "sh", _relative(path)], phase)
        return outcome.stdout if outcome.exit_code == 0 else None

    def write_file(self, path: str, content: bytes) -> None:
        script = '/usr/bin/mkdir -p -- "$(/usr/bin/dirname -- "$1")" && exec /usr/bin/cat > "$1"'
        command = [SH, "-c", script, "sh", _relative(path)]
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
        *,
        resolve: Mapping[str, str] | None = None,
        binds: Sequence[tuple[str, str]] = (),
    ) -> Outcome:
        if limits is None:  # file helpers: whole files, not a flood of output
            limits = self.backend.limits.but(wall_s=60.0, output_bytes=1 << 30)
        binds = (*self.backend.lent_pythons(), *binds)
        with self._showing(PHASE_LAYERS[phase]) as workspace_dir:
            outcome, attempts = run_command(
                self.backend,
                self.home,
                self.mounts,
                run_id=self.run_id,
                command=command,
                phase=phase,
                limits=limits,
                workspace_dir=workspace_dir,
                stdin=stdin,
                env=env,
                allow_hosts=allow_hosts,
                resolve=resolve,
                binds=binds,
            )
        if phase is Phase.SETUP and self.mounts.cache != self.home.package_cache:
            # a cache later builds reuse: setuid files or devices never outlive the command
            # (the workspace's own cache is thrown away with it, on a nosuid,nodev layer)
            normalise(self.mounts.cache)
        if self._on_egress is not None:
            for attempt in attempts:
                self._on_egress(attempt)
        return outcome

    @contextmanager
    def _showing(self, layer: Layer) -> Iterator[Path]:
        """Hold `layer` in view while a command runs; switching waits for the other's commands."""
        with self._layer_changed:
            while self._layer is not layer and self._running:
                self._layer_changed.wait()
            if self._layer is not layer:
                self._switch(layer)
            self._running += 1
        try:
            yield self._view()
        finally:
            with self._layer_changed:
                self._running -= 1
                self._layer_changed.notify_all()

    @property
    def setup_outputs(self) -> dict[str, str]:
        """The files the setup phase created in the tree (path → sha256 of what it wrote):
        shown in every phase, never part of the change."""
        return {path: digest(content) for path, content in self._outputs.items()}

    def keep_setup_outputs(self) -> str:
        """Keep the files the setup phase just created in the tree (`setup_outputs.py`): into
        the environment (what an image keeps) and, from the next layer switch on, the engine
        layer. Call it once the setup steps succeeded; returns the setup log's lines on it."""
        with self._layer_changed:
            while self._running:
                self._layer_changed.wait()
            if self._layer is not Layer.SETUP:
                return ""
            setup_view = self.home.check_upper if self.overlay else self.home.check_copy
            engine = self.home.upper if self.overlay else self.home.merged
            kept = collect(setup_view, tree=self.mounts.tree, engine=engine, known=self._outputs)
            store(self._env_folder(), kept.files, owner=self.mounts.owner)
            self._outputs = kept.files
            return kept.log_lines()

    def _env_folder(self) -> Path:
        """The environment as the factory reaches it (what `/env` shows)."""
        if self.overlay and not self.mounts.env_writable_base:
            return self.home.env_merged
        return self.mounts.env

    def _switch(self, layer: Layer) -> None:
        tree, owner, outputs = self.mounts.tree, self.mounts.owner, self._outputs
        if self.overlay:
            if layer is not Layer.ENGINE:
                self.home.show_throwaway(tree=tree, owner=owner, outputs=outputs)
            else:
                self.home.show_engine(tree=tree, owner=owner, outputs=outputs)
        else:
            place(self.home.merged, outputs, lower=None, owner=owner)
            remove_tree(self.home.check_copy)
            if layer is not Layer.ENGINE:
                shutil.copytree(
                    self.home.merged,
                    self.home.check_copy,
                    symlinks=True,
                    copy_function=_copy_regular,
                )
        self._layer = layer

    def _view(self) -> Path:
        if self._layer is not Layer.ENGINE and not self.overlay:
            return self.home.check_copy
        return self.home.merged

    def changes(self) -> Change:
        kept = set(self._outputs)
        if self.overlay:
            return harvest_overlay(lower=self.mounts.tree, upper=self.home.upper,
                                   setup_outputs=kept)  # fmt: skip
        return harvest_copy(lower=self.mounts.tree, merged=self.home.merged, setup_outputs=kept)

    def installed_dependencies(self) -> list[str] | None:
        """What the image installed, while no dependency file of the workspace has changed;
        None when the setup phase must run."""
        if self.lease is None or not self.overlay:
            return None
        written = [name for name, _ in files_below(self.home.upper) if name not in self._outputs]
        if dependency_files(written):
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
        host_uid: int | None = None,
        host_gid: int | None = None,
        host_id_count: int | None = None,
        seccomp: bool = True,
        map_to_host_root: bool = False,
        mirrors: Mirrors | None = None,
        interpreters: PythonInterpreters | None = None,
    ) -> None:
        """`seccomp=False` and `map_to_host_root=True` undo two hardening steps; they exist only
        so that the benchmark can print what each step costs, and no setting reaches them.
        `interpreters`: the Pythons a project may ask for (default: none but `python`, and
        those already installed under `<work_root>/../pythons`)."""
        self.work_root = work_root.resolve()
        self.cache_dir = cache_dir.resolve()
        self.python = python
        self.interpreters = interpreters or PythonInterpreters(
            self.work_root.parent / "pythons",
            host_python=str(python),
            downloads_json_url=None,
            mirror=None,
            install_timeout_s=setup_timeout_s,
        )
        self.limits = (limits or Limits()).but(output_bytes=max_output_bytes)
        self.disk_bytes = disk_bytes
        self.tmp_bytes = tmp_bytes
        self.egress = (
            dict(egress)
            if egress is not None
            else {Phase.SETUP.value: EgressPolicy(allow=PACKAGE_INDEX_HOSTS)}
        )
        self.mirrors = mirrors or Mirrors(self.work_root.parent / "mirrors")
        self.images = images
        self.setup_timeout_s = setup_timeout_s
        self.search_path = search_path
        self.use_cgroups = cgroups
        self.overlay = os.geteuid() == 0
        self.seccomp = seccomp
        dropping = self.overlay and not map_to_host_root
        self.id_table = (
            IdTable(
                self.work_root.parent / "sandbox-ids.json",
                host_id_range(host_uid, host_gid, host_id_count),
            )
            if dropping
            else None
        )
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
                limits=self.limits,
                disk_bytes=self.disk_bytes,
                tmp_bytes=self.tmp_bytes,
                egress=self.egress,
                proxy=self.proxy,
                cgroups=roots,
                search_path=self.search_path,
                seccomp=self.seccomp,
                pythons_dir=self.interpreters.root,
            )
            sweep_stale(self.work_root)
        return self._backend

    def ids_for(self, repo: Path) -> HostIds | None:
        """The unprivileged host ids the sandboxes of `repo` run as (None without root)."""
        return self.id_table.for_repository(str(repo)) if self.id_table else None

    def _accounts(self, ids: HostIds | None) -> Path:
        """The sandbox's `passwd` and `group`: its own user, none of the host's accounts."""
        folder = self.work_root.parent / "sandbox-etc" / (str(ids.uid) if ids else "userns")
        if not (folder / "group").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            for name, text in zip(("passwd", "group"), passwd_lines(ids), strict=True):
                tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}"
                tmp.write_text(text)  # one writer's file each: first runs race here
                tmp.chmod(0o644)
                tmp.rename(folder / name)
        return folder

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
        mirror = self.mirrors.sync(repo)  # host git never runs in the source
        base_commit = mirror.resolve(commit)
        ids = self.ids_for(mirror.source)
        shared = Mounts(
            tree=Path(), env=Path(), cache=Path(), accounts=self._accounts(ids), ids=ids
        )
        lease = None
        outputs: dict[str, bytes] = {}
        if self.images is not None:
            dependencies = self.images.key(mirror, base_commit).dep_hash
            cache = self._repository_cache(mirror.source, ids, dependencies)
            build = partial(self._build_env, run_id=run_id, on_egress=on_egress,
                            shared=replace(shared, cache=cache))  # fmt: skip
            lease = self.images.lease(mirror, base_commit, build, owner=shared.owner)
        # one folder per provisioning: a run resumed on this host by another worker (the
        # first one paused or killed) never shares, nor destroys, the other's workspace
        home = WorkspaceHome(self.work_root / f"{run_id}.{secrets.token_hex(4)}")
        try:
            home.create(disk_bytes=self.disk_bytes if backend.overlay else None,
                        owner=shared.owner)  # fmt: skip
            # the workspace's own setup (a change that edits a dependency file, or no images)
            # gets a cache of its own, thrown away with it: an untrusted change can never
            # plant a package that a later image build of this repository installs
            shared = replace(shared, cache=home.package_cache)
            if lease is None:
                mirror.export(base_commit, home.lower, owner=shared.owner)
                mounts = replace(shared, tree=home.lower, env=home.env_base)
            else:
                mounts = replace(shared, tree=lease.tree, env=lease.env)
                outputs = load(lease.env)
            _mount(home, mounts, overlay=backend.overlay, outputs=outputs)
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
            outputs=outputs,
        )

    def _repository_cache(self, repo: Path, ids: HostIds | None, dependencies: str) -> Path:
        """The package cache of image builds of one repository and one set of dependency
        files, owned by the sandbox's user: no other repository, and no build of other
        dependencies (another branch's), ever installs what its setup left there."""
        digest = hashlib.sha256(str(repo).encode()).hexdigest()[:16]
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', repo.name)[:40]}-{digest}"
        (self.cache_dir / name).mkdir(exist_ok=True, mode=0o700)
        folder = self.cache_dir / name / dependencies[:16]
        folder.mkdir(exist_ok=True, mode=0o700)
        if ids is not None and os.lstat(folder).st_uid != ids.uid:
            os.chown(folder, *ids.owner)
        return folder

    def _build_env(
        self,
        tree: Path,
        env: Path,
        *,
        run_id: str,
        on_egress: EgressListener | None,
        shared: Mounts,
    ) -> list[str]:
        """Install a tree's dependencies into an image's empty env folder (SETUP phase)."""
        backend = self.backend()
        home = WorkspaceHome(self.work_root / f"{run_id}.image")
        mounts = replace(shared, tree=tree, env=env, env_writable_base=True)
        try:
            home.create(disk_bytes=self.disk_bytes if backend.overlay else None,
                        owner=mounts.owner)  # fmt: skip
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
                builder,
                python=str(self.python),
                timeout_s=self.setup_timeout_s,
                interpreters=self.interpreters,
            )
        finally:
            builder.destroy()

    def close(self) -> None:
        """Stop the egress proxy (workspaces are destroyed by their owners)."""
        self.proxy.shutdown()


def _mount(
    home: WorkspaceHome,
    mounts: Mounts,
    *,
    overlay: bool,
    outputs: Mapping[str, bytes] | None = None,
) -> None:
    """The workspace view: overlays as root, else a plain copy of the tree; with the files an
    image's setup created in the tree (`outputs`) in the engine layer."""
    if overlay:
        place(home.upper, outputs or {}, lower=mounts.tree, owner=mounts.owner)
        home.mount(tree=mounts.tree, env=None if mounts.env_writable_base else mounts.env)
    else:
        shutil.copytree(mounts.tree, home.merged, symlinks=True, dirs_exist_ok=True)
        place(home.merged, outputs or {}, lower=None, owner=mounts.owner)


def _copy_regular(source: str, target: str) -> None:
    """Copy a regular file; FIFOs, sockets and devices are not carried into the copy."""
    if stat.S_ISREG(os.lstat(source).st_mode):
        shutil.copy2(source, target)


def _relative(path: str) -> str:
    """Refuse absolute paths and `..` so file helpers stay inside the workspace."""
    parts = Path(path).parts
    if Path(path).is_absolute() or ".." in parts or not parts:
        raise ValueError(f"workspace paths must be relative and inside the workspace: {path!r}")
    return path
