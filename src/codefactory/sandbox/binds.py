"""Host folders lent read-only to one sandboxed command (an engine image, its configuration).

Each is bound read-only, nosuid and nodev (bubblewrap adds both to every bind that is not a
`--dev-bind`) at a path of its own: never over, under or around the workspace, the
environment, the package cache, the factory's tools, the egress socket or a system folder,
so a lent folder can neither hide nor replace what the sandbox itself shows.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from pathlib import Path

from codefactory.sandbox.layout import CACHE_DIR, EGRESS_SOCKET, ENV_DIR, SANDBOX_ROOT, TOOLS_DIR

RESERVED = (
    SANDBOX_ROOT,
    ENV_DIR,
    CACHE_DIR,
    TOOLS_DIR.rsplit("/", 1)[0],
    EGRESS_SOCKET.rsplit("/", 1)[0],
    *("/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/proc", "/dev", "/sys", "/tmp"),
    *("/run", "/root", "/home", "/var", "/boot"),
)
"""Sandbox paths a lent folder may not overlap: what the sandbox shows, and system folders."""


def read_only_binds(mounts: Mapping[str, Path] | None) -> tuple[tuple[str, str], ...]:
    """`mounts` (sandbox path → host folder) checked, as (sandbox path, resolved host folder)
    pairs. A ValueError names the first entry refused: a sandbox path that is not absolute and
    normal, that overlaps a reserved path (`RESERVED`) or another entry, or a host path that
    is not an existing folder."""
    binds: list[tuple[str, str]] = []
    for target, source in (mounts or {}).items():
        _check_target(target)
        for other, _ in binds:
            if _overlap(target, other):
                raise ValueError(f"mount targets {other!r} and {target!r} overlap")
        folder = Path(source)
        if not folder.is_absolute() or not folder.is_dir():
            raise ValueError(f"mount source for {target!r} is not an existing folder: {source}")
        binds.append((target, str(folder.resolve())))
    return tuple(binds)


def _check_target(target: str) -> None:
    if not target.startswith("/") or posixpath.normpath(target) != target or "//" in target:
        raise ValueError(f"mount target must be an absolute, normal path: {target!r}")
    for reserved in RESERVED:
        if _overlap(target, reserved):
            raise ValueError(f"mount target {target!r} overlaps the sandbox's {reserved}")


def _overlap(a: str, b: str) -> bool:
    """Whether one of two normal absolute paths is the other or lies beneath it."""
    a_dir, b_dir = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a_dir.startswith(b_dir) or b_dir.startswith(a_dir)
