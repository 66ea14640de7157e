"""Container-runtime sandbox (podman or docker) behind the same port, for hosts where
bubblewrap is not allowed but a container engine is.

One container per workspace, started idle (`sleep infinity`) with no network, no
capabilities, `no-new-privileges`, a read-only root, a private `/tmp`, memory and process
caps, as uid 65534; the workspace is a host folder (a copy of the tree) bind-mounted at
`/workspace`, so changes are harvested on the host as for the copy path of bubblewrap. The
tree comes from the factory's mirror of the repository (`mirror.py`); host files of the
workspace are read only with `beneath.read_beneath`, never through a link.
Each command is a `exec` in that container, supervised like any other; on a breach the
whole container is killed, and the next command starts a fresh one over the same folder.
Egress through the proxy is not offered by this backend yet: allowing hosts is refused.
Only the "engine unavailable" path is exercised on the machine this was written on (a
docker client without an engine).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from codefactory.domain import Change, ExecResult
from codefactory.sandbox.beneath import BeneathError, read_beneath
from codefactory.sandbox.egress import EgressListener, EgressPolicy
from codefactory.sandbox.errors import ProvisionFailed, SandboxUnavailable
from codefactory.sandbox.harvest import MAX_FILE_BYTES, harvest_copy
from codefactory.sandbox.layout import SANDBOX_PATH, SANDBOX_ROOT
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.mirror import Mirrors
from codefactory.sandbox.port import Phase
from codefactory.sandbox.supervise import supervise

RUNTIMES = ("podman", "docker")


def find_runtime(preferred: str = "", search_path: str | None = None) -> str:
    """The container client to use, after checking that its engine answers."""
    names = (preferred,) if preferred else RUNTIMES
    for name in names:
        binary = shutil.which(name, path=search_path)
        if binary is None:
            continue
        probe = subprocess.run(  # noqa: S603
            [binary, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if probe.returncode == 0:
            return binary
        cause = (probe.stderr.strip().splitlines() or ["no answer"])[-1]
        raise SandboxUnavailable(f"`{name}` is installed but its engine is unavailable: {cause}")
    raise SandboxUnavailable(f"no container runtime found (looked for {', '.join(names)})")


class ContainerWorkspace:
    """A workspace folder and the idle container that runs its commands."""

    def __init__(
        self, *, run_id: str, base_commit: str, home: Path, runtime: str, image: str,
        limits: Limits, networked_phases: frozenset[str] = frozenset(),
    ) -> None:  # fmt: skip
        self.run_id = run_id
        self.base_commit = base_commit
        self.home = home
        self._runtime = runtime
        self._image = image
        self._limits = limits
        self._name = f"codefactory-{run_id}"
        self._running = False
        self._networked = networked_phases

    def _start(self) -> None:
        if self._running:
            return
        self._runtime_call(
            "run", "--detach", "--rm", "--name", self._name, "--network", "none",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--read-only",
            "--tmpfs", "/tmp", "--user", "65534:65534",
            "--memory", str(self._limits.memory_bytes),
            "--pids-limit", str(self._limits.processes),
            "--volume", f"{self.home / 'work'}:{SANDBOX_ROOT}", "--workdir", SANDBOX_ROOT,
            self._image, "sleep", "infinity",
        )  # fmt: skip
        self._running = True

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
        if mounts:
            raise SandboxUnavailable(
                "the container backend cannot lend host folders to one command (an engine "
                "image): use the bubblewrap backend"
            )
        if allow_hosts or resolve or phase.value in self._networked:
            raise SandboxUnavailable(
                f"the container backend does not offer egress yet ({phase.value} phase): "
                "use the bubblewrap backend, or set that phase's hosts to []"
            )
        self._start()
        chosen = (limits or self._limits).but(wall_s=timeout_s)
        variables = {"PATH": SANDBOX_PATH, "HOME": "/tmp"} | dict(env or {})
        argv = [self._runtime, "exec", "--interactive"]
        for name, value in variables.items():
            argv += ["--env", f"{name}={value}"]
        outcome = supervise([*argv, self._name, *command], env={}, stdin=stdin, limits=chosen)
        if outcome.limit_hit is not None:
            self._stop()  # the tree inside lives in the container: kill all of it
        return ExecResult(
            command=tuple(command),
            exit_code=outcome.exit_code,
            stdout=outcome.stdout.decode("utf-8", "replace"),
            stderr=outcome.stderr.decode("utf-8", "replace"),
            duration_s=outcome.duration_s,
            timed_out=outcome.limit_hit is not None and outcome.limit_hit.value == "wall-clock",
            limit_hit=outcome.limit_hit.value if outcome.limit_hit else "",
        )

    def read_file(self, path: str, *, phase: Phase = Phase.ENGINE) -> bytes | None:
        """Read a workspace file on the host, never through a link (one layer: any phase)."""
        self._inside(path)
        try:
            return read_beneath(self.home / "work", path, max_bytes=MAX_FILE_BYTES)
        except BeneathError:
            return None  # missing, a link, past a link, special, or too large

    def write_file(self, path: str, content: bytes) -> None:
        result = self.exec(
            ["sh", "-c", 'mkdir -p -- "$(dirname -- "$1")" && exec cat > "$1"', "sh", path],
            phase=Phase.ENGINE,
            stdin=content,
        )
        if not result.ok:
            raise OSError(f"could not write {path} in the workspace: {result.stderr}")

    def changes(self) -> Change:
        return harvest_copy(lower=self.home / "lower", merged=self.home / "work")

    def destroy(self) -> None:
        self._stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def _inside(self, path: str) -> Path:
        parts = Path(path).parts
        if Path(path).is_absolute() or ".." in parts or not parts:
            raise ValueError(f"workspace paths must be relative and inside the workspace: {path!r}")
        return self.home / "work" / path

    def _stop(self) -> None:
        if self._running:
            subprocess.run(  # noqa: S603
                [self._runtime, "rm", "--force", self._name], capture_output=True, check=False
            )
            self._running = False

    def _runtime_call(self, *args: str) -> None:
        result = subprocess.run(  # noqa: S603
            [self._runtime, *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise SandboxUnavailable(f"{self._runtime} {args[0]} failed: {result.stderr.strip()}")


class ContainerSandbox:
    """Provisions container workspaces; chosen with `sandbox.type = "container"`."""

    def __init__(
        self,
        work_root: Path,
        *,
        runtime: str = "",
        image: str = "python:3.11-slim",
        limits: Limits | None = None,
        egress: Mapping[str, EgressPolicy] | None = None,
        search_path: str | None = None,
        mirrors: Mirrors | None = None,
    ) -> None:
        self.work_root = work_root.resolve()
        self.mirrors = mirrors or Mirrors(self.work_root.parent / "mirrors")
        self.runtime = runtime
        self.image = image
        self.limits = limits or Limits()
        self.egress = dict(egress or {})
        self.search_path = search_path

    def provision(
        self,
        *,
        repo: Path,
        commit: str,
        run_id: str,
        on_egress: EgressListener | None = None,
    ) -> ContainerWorkspace:
        runtime = find_runtime(self.runtime, self.search_path)
        mirror = self.mirrors.sync(repo)
        base_commit = mirror.resolve(commit)
        home = self.work_root / f"{run_id}.{secrets.token_hex(4)}"  # one per provisioning
        try:
            (home / "lower").mkdir(parents=True)
            mirror.export(base_commit, home / "lower")
            shutil.copytree(home / "lower", home / "work", symlinks=True)
        except OSError as err:
            shutil.rmtree(home, ignore_errors=True)
            raise ProvisionFailed(f"could not prepare the workspace folder: {err}") from err
        return ContainerWorkspace(
            run_id=run_id,
            base_commit=base_commit,
            home=home,
            runtime=runtime,
            image=self.image,
            limits=self.limits,
            networked_phases=frozenset(p for p, e in self.egress.items() if e.enabled),
        )
