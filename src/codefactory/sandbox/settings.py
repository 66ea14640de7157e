"""Settings of the execution environment (the `sandbox` section of `Settings`).

Environment variables use `__` between levels, e.g.
`CODEFACTORY_SANDBOX__LIMITS__MEMORY_BYTES=1073741824` or
`CODEFACTORY_SANDBOX__EGRESS__ENGINE_HOSTS='["models.internal"]'`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from codefactory.sandbox.egress import PACKAGE_INDEX_HOSTS
from codefactory.sandbox.limits import GIB, MIB


class LimitSettings(BaseModel):
    """Caps on every sandboxed command; a breach kills the whole tree and is recorded."""

    model_config = ConfigDict(extra="forbid")

    cpu_s: float = 600.0
    """CPU seconds over the whole process tree (cgroup), and per process (RLIMIT_CPU)."""
    memory_bytes: int = 2 * GIB
    """Memory of the whole tree, page cache and files written to the workspace included."""
    processes: int = 512
    """Processes and threads alive at once in the tree (cgroup `pids.max`)."""
    file_bytes: int = GIB
    """Largest single file a command may write (RLIMIT_FSIZE)."""
    disk_bytes: int = 2 * GIB
    """Everything a run may write into its workspace and environment (a tmpfs of this size)."""
    tmp_bytes: int = 512 * MIB
    """Size of the private `/tmp` of each command."""


class EgressSettings(BaseModel):
    """Hosts reachable through the egress proxy, per phase; all others are denied."""

    model_config = ConfigDict(extra="forbid")

    setup_hosts: list[str] = Field(default_factory=lambda: list(PACKAGE_INDEX_HOSTS))
    """Allowed in the SETUP phase (dependency installation): the package index."""
    engine_hosts: list[str] = Field(default_factory=list)
    """Allowed while the engine works (e.g. a model endpoint); none by default."""
    check_hosts: list[str] = Field(default_factory=list)
    """Allowed while checks run; none by default."""
    resolve: dict[str, str] = Field(default_factory=dict)
    """Explicit name → `address[:port]` map used by the proxy before DNS; the only way an
    allowed name may point at a loopback or link-local address."""


class ImageSettings(BaseModel):
    """Pre-warmed workspace images (tree + installed virtualenv), cached per repository."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Build and reuse images; when off, every run exports its tree and installs afresh."""
    ttl_days: float = 7.0
    """An image unused for this long is removed when another image of its repository is built."""


class SandboxSettings(BaseModel):
    """How workspaces are isolated."""

    model_config = ConfigDict(extra="forbid")

    type: str = "bubblewrap"
    """Backend: `bubblewrap` (the default on Linux) or `container` (podman or docker)."""
    python: Path = Path("/usr/bin/python3")
    """Interpreter the repository's virtualenv is built from, visible inside the sandbox, unless
    the repository asks for another Python (`.python-version`, `requires-python`)."""
    pythons_dir: Path | None = None
    """Where the Pythons repositories ask for are installed (uv-managed CPython, shown read-only
    to every sandbox). Default: `<data>/pythons`."""
    python_downloads_json_url: str | None = None
    """A list of python-build-standalone archives, each with its URL and SHA-256, in uv's
    `--python-downloads-json-url` format (a bank's internal copy). None: not used."""
    python_install_mirror: str | None = None
    """A mirror of the python-build-standalone releases, uv's `--mirror`
    (`UV_PYTHON_INSTALL_MIRROR`). With neither this nor the downloads list, a repository that
    asks for a Python the host lacks fails its setup with `PythonUnavailable`."""
    command_timeout_s: float = 300.0
    """Wall-clock limit of `codefactory sandbox run` (the loop's callers pass their own)."""
    setup_timeout_s: float = 600.0
    """Wall-clock limit for the dependency-installation phase."""
    max_output_bytes: int = 4_000_000
    """Output kept per stream of a sandboxed command; more kills the command."""
    search_path: str = ""
    """Where to look for `bwrap`, `unshare` and `socat`; empty: the process's PATH."""
    cgroups: bool = True
    """Use cgroups (v1 or v2, detected at start) for memory, process and CPU limits where
    they are writable."""
    host_uid: int | None = None
    """When the factory runs as root: the first of the unprivileged host uids sandboxed
    commands run as (one per repository, from a digest of its path). Default: the
    `codefactory` entry in /etc/subuid, else 1879048192. No id of the range may be 0 or an
    account's."""
    host_gid: int | None = None
    """The same for the gids (/etc/subgid)."""
    host_id_count: int | None = None
    """How many ids the range holds. Default: the subordinate entry's count, else 65536."""
    container_runtime: str = ""
    """For `type = "container"`: `podman` or `docker`; empty: whichever is found first."""
    container_image: str = "python:3.11-slim"
    """For `type = "container"`: the image every workspace container starts from."""
    limits: LimitSettings = Field(default_factory=LimitSettings)
    egress: EgressSettings = Field(default_factory=EgressSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
