"""Bubblewrap sandbox over an overlay (copy-on-write) layer of the repository.

Each workspace is a read-only lower layer (the repository's tree at the base commit, no `.git`)
and a per-run upper layer. Every command runs as `unshare --mount` (a private mount namespace,
so the overlay mount vanishes with the process: no leftover mounts) then `bwrap` as uid 65534
in new user, PID, IPC, UTS and network namespaces with all capabilities dropped
(FIELD-NOTES: bubblewrap as root keeps capabilities otherwise). Only the SETUP phase shares
the host network. When overlay mounts are not possible (not root), the workspace is a copy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from codefactory.domain import Change, ExecResult
from codefactory.sandbox.errors import ProvisionFailed, SandboxUnavailable
from codefactory.sandbox.harvest import harvest_copy, harvest_overlay
from codefactory.sandbox.port import Phase
from codefactory.sandbox.tools import sandbox_tools

SANDBOX_ROOT = "/workspace"
ENV_DIR = "/env"
TOOLS_DIR = "/opt/codefactory/bin"
CACHE_DIR = "/cache"
SANDBOX_PATH = f"{ENV_DIR}/bin:{TOOLS_DIR}:/usr/local/bin:/usr/bin:/bin"
# Files a setup phase needs for DNS and TLS; never the whole of /etc (shadow, keys).
SETUP_ETC = (
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
)
BASE_ETC = ("/etc/alternatives", "/etc/localtime", "/etc/ld.so.cache", "/etc/passwd", "/etc/group")


def _require(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise SandboxUnavailable(
            f"`{binary}` is not installed; install it (Debian: apt-get install "
            f"{'bubblewrap' if binary == 'bwrap' else 'util-linux'}) or run `make demo`."
        )
    return found


class BubblewrapWorkspace:
    """One run's isolated workspace; every method acts through a fresh sandboxed process."""

    def __init__(
        self,
        *,
        run_id: str,
        base_commit: str,
        home: Path,
        overlay: bool,
        python: Path,
        max_output_bytes: int,
        cache_dir: Path,
    ) -> None:
        self.run_id = run_id
        self.base_commit = base_commit
        self.home = home
        self.overlay = overlay
        self._python = python
        self._max_output = max_output_bytes
        self._cache_dir = cache_dir
        self._bwrap = _require("bwrap")
        self._unshare = _require("unshare") if overlay else ""

    @property
    def lower(self) -> Path:
        return self.home / "lower"

    @property
    def upper(self) -> Path:
        return self.home / "upper"

    @property
    def merged(self) -> Path:
        return self.home / "merged"

    @property
    def env_dir(self) -> Path:
        return self.home / "env"

    def exec(
        self,
        command: Sequence[str],
        *,
        phase: Phase,
        timeout_s: float = 300.0,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        started = time.monotonic()
        code, out, err, timed_out = self._run(command, phase, timeout_s, stdin, env)
        return ExecResult(
            command=tuple(command),
            exit_code=code,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
        )

    def read_file(self, path: str) -> bytes | None:
        code, out, _, _ = self._run(
            ["sh", "-c", 'test -f "$1" && exec cat -- "$1"', "sh", _relative(path)],
            Phase.ENGINE,
            60.0,
            None,
            None,
        )
        return out if code == 0 else None

    def write_file(self, path: str, content: bytes) -> None:
        script = 'mkdir -p -- "$(dirname -- "$1")" && exec cat > "$1"'
        code, _, err, _ = self._run(
            ["sh", "-c", script, "sh", _relative(path)], Phase.ENGINE, 60.0, content, None
        )
        if code != 0:
            raise OSError(
                f"could not write {path} in the workspace: {err.decode(errors='replace')}"
            )

    def changes(self) -> Change:
        if self.overlay:
            return harvest_overlay(lower=self.lower, upper=self.upper)
        return harvest_copy(lower=self.lower, merged=self.merged)

    def destroy(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def _run(
        self,
        command: Sequence[str],
        phase: Phase,
        timeout_s: float,
        stdin: bytes | None,
        env: Mapping[str, str] | None,
    ) -> tuple[int, bytes, bytes, bool]:
        argv = self._argv(command, phase)
        process_env = {
            "PATH": SANDBOX_PATH,
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "VIRTUAL_ENV": ENV_DIR,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if phase is Phase.SETUP:
            process_env |= {
                "UV_CACHE_DIR": f"{CACHE_DIR}/uv",
                "UV_LINK_MODE": "copy",
                "UV_PYTHON_DOWNLOADS": "never",
                "UV_NO_PROGRESS": "1",
                # a bank's egress proxy re-signs TLS: trust the system store
                "UV_NATIVE_TLS": "1",
                "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
            }
        process_env |= dict(env or {})
        proc = subprocess.Popen(  # noqa: S603 - argv is built here, never from a shell string
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=process_env,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(stdin, timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            timed_out = True
        return proc.returncode, self._cap(out), self._cap(err), timed_out

    def _cap(self, data: bytes) -> bytes:
        if len(data) <= self._max_output:
            return data
        return data[: self._max_output] + b"\n[output cut by the sandbox's output limit]\n"

    def _argv(self, command: Sequence[str], phase: Phase) -> list[str]:
        bwrap = [self._bwrap, *self._bwrap_options(phase), "--", *command]
        if not self.overlay:
            return bwrap
        options = f"lowerdir={self.lower},upperdir={self.upper},workdir={self.home / 'work'}"
        mount = 'mount -t overlay overlay -o "$1" "$2" && shift 2 && exec "$@"'
        return [
            self._unshare,
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            mount,
            "sh",
            options,
            str(self.merged),
            *bwrap,
        ]

    def _bwrap_options(self, phase: Phase) -> list[str]:
        options = [
            "--unshare-user",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "sandbox",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--bind",
            str(self.merged),
            SANDBOX_ROOT,
            "--chdir",
            SANDBOX_ROOT,
        ]
        for path in BASE_ETC:
            options += ["--ro-bind-try", path, path]
        for name, binary in sandbox_tools().items():
            options += ["--ro-bind", str(binary), f"{TOOLS_DIR}/{name}"]
        if self._python.parent != Path("/usr/bin"):
            prefix = str(self._python.resolve().parent.parent)
            options += ["--ro-bind", prefix, prefix]
        if phase is Phase.SETUP:
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            options += [
                "--bind",
                str(self.env_dir),
                ENV_DIR,
                "--bind",
                str(self._cache_dir),
                CACHE_DIR,
            ]
            for path in SETUP_ETC:
                options += ["--ro-bind-try", path, path]
        else:
            options += ["--ro-bind", str(self.env_dir), ENV_DIR, "--unshare-net"]
        return options


class BubblewrapSandbox:
    """Provisions bubblewrap workspaces under `work_root`; the default backend on Linux."""

    def __init__(
        self,
        work_root: Path,
        cache_dir: Path,
        *,
        python: Path = Path("/usr/bin/python3"),
        max_output_bytes: int = 4_000_000,
    ) -> None:
        self.work_root = work_root.resolve()
        self.cache_dir = cache_dir.resolve()
        self.python = python
        self.max_output_bytes = max_output_bytes
        self.overlay = os.geteuid() == 0

    def provision(self, *, repo: Path, commit: str, run_id: str) -> BubblewrapWorkspace:
        _require("bwrap")
        repo = repo.resolve()
        base_commit = resolve_commit(repo, commit)
        home = self.work_root / run_id
        if home.exists():
            shutil.rmtree(home)
        try:
            for part in ("lower", "upper", "work", "merged", "env"):
                (home / part).mkdir(parents=True)
            _export_tree(repo, base_commit, home / "lower")
            if not self.overlay:
                shutil.copytree(home / "lower", home / "merged", symlinks=True, dirs_exist_ok=True)
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise
        return BubblewrapWorkspace(
            run_id=run_id,
            base_commit=base_commit,
            home=home,
            overlay=self.overlay,
            python=self.python,
            max_output_bytes=self.max_output_bytes,
            cache_dir=self.cache_dir,
        )


def resolve_commit(repo: Path, revision: str) -> str:
    """The full commit id `revision` names in `repo`; a clear error when `repo` is no repository."""
    if not repo.is_dir():
        raise ProvisionFailed(f"repository path does not exist or is not a folder: {repo}")
    result = subprocess.run(  # noqa: S603
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.defpath, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"},
    )
    if result.returncode != 0:
        inside = subprocess.run(  # noqa: S603
            ["git", "-C", str(repo), "rev-parse", "--git-dir"],
            capture_output=True,
            text=True,
            check=False,
        )
        if inside.returncode != 0:
            raise ProvisionFailed(f"not a git repository: {repo}")
        raise ProvisionFailed(f"{repo} has no commit {revision!r} (an empty repository?)")
    return result.stdout.strip()


def _export_tree(repo: Path, commit: str, target: Path) -> None:
    """Write the tree of `commit` into `target` with `git archive` (no `.git`, no hooks)."""
    archive = target.parent / "base.tar"
    result = subprocess.run(  # noqa: S603
        ["git", "-C", str(repo), "archive", "--format=tar", "-o", str(archive), commit],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ProvisionFailed(
            f"could not export {repo} at {commit}: {result.stderr.strip() or 'git archive failed'}"
        )
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="tar")
    archive.unlink()


def _relative(path: str) -> str:
    """Refuse absolute paths and `..` so file helpers stay inside the workspace."""
    parts = Path(path).parts
    if Path(path).is_absolute() or ".." in parts or not parts:
        raise ValueError(f"workspace paths must be relative and inside the workspace: {path!r}")
    return path
