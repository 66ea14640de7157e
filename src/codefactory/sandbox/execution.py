"""One command in a workspace: its cgroup, its egress channel, its supervised process."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from codefactory.sandbox.backend import Backend, require_binary, sandbox_environment
from codefactory.sandbox.bwrap_args import HOST_ENV, CommandSpec, command_argv
from codefactory.sandbox.cgroups import CommandCgroup
from codefactory.sandbox.egress import EgressAttempt
from codefactory.sandbox.errors import StartFailed
from codefactory.sandbox.hostids import HostIds
from codefactory.sandbox.layers import WorkspaceHome
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.port import Phase
from codefactory.sandbox.supervise import Outcome, supervise


@dataclass(frozen=True, kw_only=True)
class Mounts:
    """The lower layers of a workspace."""

    tree: Path
    env: Path
    cache: Path
    """This repository's package cache (SETUP only): never shared with another repository."""
    accounts: Path | None = None
    """The folder holding the sandbox's own `passwd` and `group`."""
    ids: HostIds | None = None
    """As root, this repository's unprivileged host ids, which own the writable layers."""

    @property
    def owner(self) -> tuple[int, int] | None:
        """Who owns what the sandbox writes on the host (None: the factory's own user)."""
        return self.ids.owner if self.ids else None

    env_writable_base: bool = False
    """Image builds: `env` itself is the environment (writable in SETUP), with no overlay."""


def run_command(
    backend: Backend,
    home: WorkspaceHome,
    mounts: Mounts,
    *,
    run_id: str,
    command: Sequence[str],
    phase: Phase,
    limits: Limits,
    workspace_dir: Path,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    allow_hosts: Sequence[str] = (),
    resolve: Mapping[str, str] | None = None,
    binds: Sequence[tuple[str, str]] = (),
) -> tuple[Outcome, list[EgressAttempt]]:
    """Run `command` over `workspace_dir` (the layer the phase sees) to its end or its first
    breached limit; `StartFailed` if it never ran. `binds` are checked read-only binds
    (`binds.read_only_binds`); a ValueError for a `resolve` entry the policy refuses."""
    policy = backend.policy(phase, allow_hosts, resolve)
    if policy.enabled:
        require_binary("socat", backend.search_path)
    channel = (
        backend.proxy.open(
            run_id=run_id, phase=phase.value, policy=policy, socket_owner=mounts.owner
        )
        if (policy.enabled)
        else None
    )
    cgroup = None
    seccomp = None
    try:
        if backend.cgroups.available:
            cgroup = CommandCgroup.create(backend.cgroups, limits)
        seccomp = seccomp_fd() if backend.seccomp else None
        spec = command_spec(
            backend,
            home,
            mounts,
            phase=phase,
            limits=limits,
            workspace_dir=workspace_dir,
            env=sandbox_environment(phase, channel is not None, env),
            cgroup_procs=cgroup.procs_files if cgroup else (),
            egress_socket=channel.path if channel else None,
            seccomp_fd=seccomp,
            binds=binds,
        )
        read, write = os.pipe()
        outcome = supervise(
            command_argv(replace(spec, status_fd=write), command),
            env=HOST_ENV,
            stdin=stdin,
            limits=limits,
            cgroup=cgroup,
            disk=home.scratch if backend.overlay else None,
            status_pipe=(read, write),
            pass_fds=(seccomp,) if seccomp is not None else (),
        )
    except OSError as err:
        raise StartFailed(f"the sandbox could not start: {err}") from err
    finally:
        if seccomp is not None:
            os.close(seccomp)
        if cgroup is not None:
            cgroup.remove()
        attempts = backend.proxy.close(channel) if channel is not None else []
    if not outcome.started:
        detail = outcome.stderr.decode("utf-8", "replace").strip()[-2000:]
        raise StartFailed(
            f"the sandbox could not start: {detail or f'exit status {outcome.exit_code}'}"
        )
    return outcome, attempts


def command_spec(
    backend: Backend,
    home: WorkspaceHome,
    mounts: Mounts,
    *,
    phase: Phase,
    limits: Limits,
    workspace_dir: Path,
    env: Mapping[str, str],
    cgroup_procs: Sequence[str],
    egress_socket: Path | None,
    seccomp_fd: int | None = None,
    binds: Sequence[tuple[str, str]] = (),
) -> CommandSpec:
    """The command-line shape for one command in a workspace."""
    env_dir = home.env_merged if backend.overlay and not mounts.env_writable_base else mounts.env
    return CommandSpec(
        bwrap=backend.bwrap,
        phase=phase,
        workspace_dir=workspace_dir,
        env_dir=env_dir,
        python=backend.python,
        cache_dir=mounts.cache,
        tmp_bytes=backend.tmp_bytes,
        limits=limits,
        address_space_rlimit=not backend.cgroups.limits_memory,
        sandbox_env=env,
        cgroup_procs=cgroup_procs,
        egress_socket=egress_socket,
        host_ids=mounts.ids,
        etc_dir=mounts.accounts,
        seccomp_fd=seccomp_fd,
        binds=tuple(binds),
    )


def seccomp_fd() -> int:
    """A readable fd holding the compiled filter (`seccomp.py`, imported on first use)."""
    from codefactory.sandbox import seccomp

    return seccomp.seccomp_fd()
