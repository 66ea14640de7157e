"""What every workspace of one bubblewrap sandbox shares: binaries, limits, egress, cgroups."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codefactory.sandbox.cgroups import CgroupRoots
from codefactory.sandbox.egress import EgressPolicy
from codefactory.sandbox.errors import SandboxUnavailable
from codefactory.sandbox.layout import CACHE_DIR, ENV_DIR, PROXY_URL, SANDBOX_PATH
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.port import Phase
from codefactory.sandbox.proxy import EgressProxy
from codefactory.sandbox.pythons import SANDBOX_PYTHONS


def require_binary(binary: str, search_path: str | None = None) -> str:
    """The path of a host binary the sandbox needs, or `SandboxUnavailable` naming it."""
    found = shutil.which(binary, path=search_path)
    if found is None:
        package = {"bwrap": "bubblewrap", "socat": "socat"}.get(binary, "util-linux")
        raise SandboxUnavailable(
            f"`{binary}` is not installed (searched {search_path or 'PATH'}); install it "
            f"(Debian: apt-get install {package}) or run `make demo`."
        )
    return found


@dataclass(frozen=True, kw_only=True)
class Backend:
    """The host side of a sandbox, fixed when it is built."""

    bwrap: str
    overlay: bool
    """Overlay mounts, a tmpfs layer and cgroups (root); else plain copies and rlimits."""
    python: Path
    limits: Limits
    disk_bytes: int
    tmp_bytes: int
    egress: Mapping[str, EgressPolicy]
    proxy: EgressProxy
    cgroups: CgroupRoots
    search_path: str | None = None
    seccomp: bool = True
    """Load the seccomp filter (`seccomp.py`) into every command."""
    pythons_dir: Path | None = None
    """The host folder of uv-managed interpreters (`pythons.PythonInterpreters.root`), shown
    read-only at `pythons.SANDBOX_PYTHONS` in every phase once it exists."""

    def lent_pythons(self) -> tuple[tuple[str, str], ...]:
        """The read-only bind of `pythons_dir`, as a (sandbox path, host folder) pair; none
        before anything was installed. Every phase gets it: a virtualenv made in SETUP from
        such an interpreter runs it by that path in the engine and check phases too."""
        if self.pythons_dir is None or not self.pythons_dir.is_dir():
            return ()
        return ((SANDBOX_PYTHONS, str(self.pythons_dir.resolve())),)

    def policy(
        self, phase: Phase, extra: Sequence[str], resolve: Mapping[str, str] | None = None
    ) -> EgressPolicy:
        """The egress policy of one command: the phase's, widened by the call's hosts and
        their addresses (`EgressPolicy.widened`: a ValueError for an entry it refuses)."""
        return self.egress.get(phase.value, EgressPolicy()).widened(extra, resolve)


def sandbox_environment(
    phase: Phase, egress: bool, extra: Mapping[str, str] | None
) -> dict[str, str]:
    """The whole environment of a sandboxed command: nothing of the host's."""
    env = {
        "PATH": SANDBOX_PATH,
        "HOME": "/tmp",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "LANG": "C.UTF-8",
        "VIRTUAL_ENV": ENV_DIR,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if phase is Phase.SETUP:
        env |= {
            "UV_CACHE_DIR": f"{CACHE_DIR}/uv",
            "UV_LINK_MODE": "copy",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1",
            # a bank's egress proxy re-signs TLS: trust the system store
            "UV_SYSTEM_CERTS": "1",
            "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
        }
    if egress:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env[name] = env[name.lower()] = PROXY_URL
        env["NO_PROXY"] = env["no_proxy"] = ""
    return env | dict(extra or {})
