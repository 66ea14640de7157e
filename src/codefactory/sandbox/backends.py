"""Pick the sandbox backend named in settings (a short name → a builder, as mini-swe-agent's
environment mapping does); heavy backends are imported only when chosen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from codefactory.sandbox.egress import EgressPolicy
from codefactory.sandbox.errors import SandboxUnavailable
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.mirror import Mirrors
from codefactory.sandbox.port import Phase, Sandbox
from codefactory.sandbox.pythons import PythonInterpreters
from codefactory.sandbox.settings import SandboxSettings


def egress_policies(settings: SandboxSettings) -> dict[str, EgressPolicy]:
    """The per-phase egress policies the settings describe."""
    egress = settings.egress
    hosts = {
        Phase.SETUP: egress.setup_hosts,
        Phase.ENGINE: egress.engine_hosts,
        Phase.CHECK: egress.check_hosts,
    }
    return {
        phase.value: EgressPolicy(allow=tuple(allowed), resolve=dict(egress.resolve))
        for phase, allowed in hosts.items()
    }


def limits_of(settings: SandboxSettings) -> Limits:
    """The default limits of every command."""
    limits = settings.limits
    return Limits(
        wall_s=settings.command_timeout_s,
        cpu_s=limits.cpu_s,
        memory_bytes=limits.memory_bytes,
        processes=limits.processes,
        output_bytes=settings.max_output_bytes,
        file_bytes=limits.file_bytes,
    )


def python_interpreters(settings: SandboxSettings, data_dir: Path) -> PythonInterpreters:
    """The Pythons repositories may ask for, as the settings configure them."""
    return PythonInterpreters(
        settings.pythons_dir or data_dir / "pythons",
        host_python=str(settings.python),
        downloads_json_url=settings.python_downloads_json_url,
        mirror=settings.python_install_mirror,
        install_timeout_s=settings.setup_timeout_s,
    )


def _bubblewrap(settings: SandboxSettings, data_dir: Path, mirrors: Mirrors) -> Sandbox:
    from codefactory.sandbox.bubblewrap import BubblewrapSandbox
    from codefactory.sandbox.images import ImageCache

    interpreters = python_interpreters(settings, data_dir)
    images = (
        ImageCache(
            data_dir / "images",
            python=str(settings.python),
            ttl_s=settings.images.ttl_days * 86400,
            mirrors=mirrors,
            interpreters=interpreters,
        )
        if settings.images.enabled
        else None
    )
    return BubblewrapSandbox(
        data_dir / "workspaces",
        data_dir / "cache",
        python=settings.python,
        max_output_bytes=settings.max_output_bytes,
        limits=limits_of(settings),
        disk_bytes=settings.limits.disk_bytes,
        tmp_bytes=settings.limits.tmp_bytes,
        egress=egress_policies(settings),
        images=images,
        setup_timeout_s=settings.setup_timeout_s,
        search_path=settings.search_path or None,
        cgroups=settings.cgroups,
        host_uid=settings.host_uid,
        host_gid=settings.host_gid,
        host_id_count=settings.host_id_count,
        mirrors=mirrors,
        interpreters=interpreters,
    )


def _container(settings: SandboxSettings, data_dir: Path, mirrors: Mirrors) -> Sandbox:
    from codefactory.sandbox.container import ContainerSandbox

    return ContainerSandbox(
        data_dir / "workspaces",
        runtime=settings.container_runtime,
        image=settings.container_image,
        limits=limits_of(settings),
        egress=egress_policies(settings),
        search_path=settings.search_path or None,
        mirrors=mirrors,
    )


BACKENDS: dict[str, Callable[[SandboxSettings, Path, Mirrors], Sandbox]] = {
    "bubblewrap": _bubblewrap,
    "container": _container,
}


def build_sandbox(
    settings: SandboxSettings, *, data_dir: Path, mirrors: Mirrors | None = None
) -> Sandbox:
    """The configured backend over `data_dir` (workspaces, package caches, images), reading
    repositories through `mirrors` (default: `<data_dir>/mirrors`)."""
    builder = BACKENDS.get(settings.type)
    if builder is None:
        raise SandboxUnavailable(
            f"unknown sandbox type {settings.type!r}; choose one of {', '.join(BACKENDS)}"
        )
    return builder(settings, data_dir, mirrors or Mirrors(data_dir / "mirrors"))
