"""The halt wrapper around any sandbox: an engine-phase command stops within seconds of an
organisation-wide halt (`codefactory halt`), whichever process raised it.

`HaltingSandbox(inner, halted)` hands out `HaltingWorkspace`s. Their `exec` of an ENGINE
command (a recipe's tool, the in-harness agent's `run`, an agent CLI's whole session):

- is refused before it starts while the factory is halted;
- runs with a random mark in its environment (`CODEFACTORY_EXEC_MARK`), which bubblewrap
  carries on its own command line (`--setenv NAME VALUE`), while a watcher thread asks
  `halted()` every `poll_s` seconds;
- on a halt, the watcher kills every process whose command line carries the mark: the outer
  bubblewrap is the leader of its own session (the supervisor starts it so), so its whole
  process group is killed, and its `--die-with-parent` child, the PID namespace's init, takes
  everything inside with it; the supervisor then sees the streams close and returns;
- then raises `ExecHalted` with the halt's description, so the run ends `failed` with it.

SETUP and CHECK commands are not interrupted: they change nothing the engine proposes, and
the next engine round (or model call) is refused anyway. A backend whose processes do not run
on this host (a container runtime's daemon starts them) still gets the refusal before the
start and the `ExecHalted` after, but its command runs to its own end or time limit.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from codefactory.domain import Change, ExecResult
from codefactory.sandbox.egress import EgressListener
from codefactory.sandbox.errors import SandboxError
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.port import Phase, Sandbox, Workspace

MARK_VARIABLE = "CODEFACTORY_EXEC_MARK"
POLL_S = 0.5
"""How often a running engine command asks whether the factory is halted (the answer is
itself at most about a second old: `policy/halt.py`)."""

HaltCheck = Callable[[], str | None]
"""The halt in force described (`halted by … at …: …`), or None."""


class ExecHalted(SandboxError):
    """An engine-phase command refused or stopped by the organisation-wide halt; the
    message is the halt's description."""


class HaltingSandbox:
    """Wraps a sandbox; its workspaces stop engine commands when the factory is halted."""

    def __init__(
        self,
        inner: Sandbox,
        halted: HaltCheck,
        *,
        poll_s: float = POLL_S,
        stopped: Callable[[str], HaltCheck] | None = None,
    ) -> None:
        self.inner = inner
        self.halted = halted
        self.poll_s = poll_s
        self.stopped = stopped
        """Given the run id when a workspace is provisioned, a check of why the code that
        provisioned it must stop driving the run (its lease lost: `store.leases.lease_watch`),
        or None; its engine commands are then stopped as a halt stops them."""

    def provision(
        self,
        *,
        repo: Path,
        commit: str,
        run_id: str,
        on_egress: EgressListener | None = None,
    ) -> Workspace:
        """`Sandbox.provision`, the workspace wrapped."""
        workspace = self.inner.provision(
            repo=repo, commit=commit, run_id=run_id, on_egress=on_egress
        )
        if self.stopped is None:
            return HaltingWorkspace(workspace, self.halted, poll_s=self.poll_s)
        stopped = self.stopped(run_id)

        def halted_or_stopped() -> str | None:
            return self.halted() or stopped()

        return HaltingWorkspace(workspace, halted_or_stopped, poll_s=self.poll_s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class HaltingWorkspace:
    """Delegates to its workspace; engine commands are refused or stopped during a halt."""

    def __init__(self, inner: Workspace, halted: HaltCheck, *, poll_s: float = POLL_S) -> None:
        self.inner = inner
        self.run_id = inner.run_id
        self.base_commit = inner.base_commit
        self.halted = halted
        self.poll_s = poll_s

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
        """`Workspace.exec`; an ENGINE command raises `ExecHalted` when the factory is halted
        before it starts or while it runs (its process tree killed first)."""
        extra: dict[str, Any] = {}  # passed on only when given, as AuditedWorkspace does
        if mounts:
            extra["mounts"] = mounts
        if resolve:
            extra["resolve"] = resolve
        if phase is not Phase.ENGINE:
            return self.inner.exec(
                command, phase=phase, timeout_s=timeout_s, stdin=stdin, env=env, limits=limits,
                allow_hosts=allow_hosts, **extra,
            )  # fmt: skip
        halt = self.halted()
        if halt is not None:
            raise ExecHalted(halt)
        mark = f"halt-mark-{secrets.token_hex(16)}"
        watcher = _Watcher(self.halted, mark, self.poll_s)
        watcher.start()
        try:
            result = self.inner.exec(
                command, phase=phase, timeout_s=timeout_s, stdin=stdin,
                env={**(env or {}), MARK_VARIABLE: mark}, limits=limits,
                allow_hosts=allow_hosts, **extra,
            )  # fmt: skip
        except SandboxError as err:  # killed before it started (`StartFailed`): the halt's
            if watcher.halt is not None:
                raise ExecHalted(watcher.halt) from err
            raise
        finally:
            watcher.stop()
        if watcher.halt is not None:
            raise ExecHalted(
                f"{watcher.halt} (engine command stopped after {result.duration_s:.1f}s)"
            )
        return result

    def read_file(self, path: str, *, phase: Phase = Phase.ENGINE) -> bytes | None:
        return self.inner.read_file(path, phase=phase)

    def write_file(self, path: str, content: bytes) -> None:
        self.inner.write_file(path, content)

    def changes(self) -> Change:
        return self.inner.changes()

    def destroy(self) -> None:
        self.inner.destroy()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # installed_dependencies, home, ...


class _Watcher:
    """Asks whether the factory is halted while one command runs; kills it on a halt."""

    def __init__(self, halted: HaltCheck, mark: str, poll_s: float) -> None:
        self._halted = halted
        self._mark = mark.encode("ascii")
        self._poll_s = poll_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="halt-watch", daemon=True)
        self.halt: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(self._poll_s):
            try:
                halt = self._halted()
            except Exception as err:  # noqa: BLE001 - fail closed, as the round check does
                # the halt watch answers from its cache while the store blips, and raises only
                # once its answer is too old to trust: a worker cut off from the store stops
                halt = f"the organisation-wide halt cannot be checked ({type(err).__name__})"
            if halt is not None:
                self.halt = halt
                # kill until the command is gone: a process started between scans is caught
                while not self._done.is_set():
                    kill_marked(self._mark)
                    self._done.wait(0.1)
                return


def kill_marked(mark: bytes) -> int:
    """SIGKILL every process whose command line carries `mark` (the process group of one
    that leads its own group); returns how many were found. Reads `/proc` (Linux)."""
    found = 0
    with contextlib.suppress(OSError):
        entries = os.listdir("/proc")
        for entry in entries:
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    if mark not in handle.read():
                        continue
            except OSError:
                continue  # gone, or not ours to read
            found += 1
            _kill(pid)
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:  # a group leader: the supervisor's bubblewrap
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
