"""Hand the cgroup v2 controllers the sandbox needs down to the factory's command groups.

In the unified hierarchy a group's children can use a controller only when every ancestor
lists it in `cgroup.subtree_control`, and a group that has member processes (other than the
root) cannot enable any ("no internal processes"). So, from the factory's own group `own`
(delegated to it by systemd's `Delegate=yes`, a container runtime, or simply root's):

    own/                     controllers enabled for children; its processes moved out
        codefactory-leaf/    where the processes of `own` live from then on
        codefactory/         enabled again
            <pid>/           enabled again: each command's group `c<n>` gets them

A host whose controllers are bound to v1 hierarchies (a hybrid host such as the one this was
written on) lists none in `cgroup.controllers`; the v1 groups then bind those limits.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

V2_CONTROLLERS = frozenset({"memory", "pids", "cpu"})
LEAF = "codefactory-leaf"


def controllers(folder: Path, name: str = "cgroup.controllers") -> frozenset[str]:
    """The controllers a group's file lists (`cgroup.controllers` or `.subtree_control`)."""
    try:
        return frozenset((folder / name).read_text().split())
    except OSError:
        return frozenset()


def enable(folder: Path, wanted: frozenset[str]) -> frozenset[str]:
    """Enable `wanted` for `folder`'s children, one by one; returns those now enabled."""
    for name in sorted(wanted - controllers(folder, "cgroup.subtree_control")):
        with contextlib.suppress(OSError):  # EBUSY with members, ENOENT when not offered
            (folder / "cgroup.subtree_control").write_text(f"+{name}")
    return wanted & controllers(folder, "cgroup.subtree_control")


def evacuate(own: Path) -> bool:
    """Move every process of `own` into its leaf child; True when `own` is left empty."""
    leaf = own / LEAF
    try:
        leaf.mkdir(exist_ok=True)
        pids = (own / "cgroup.procs").read_text().split()
    except OSError:
        return False
    for pid in pids:
        with contextlib.suppress(OSError):  # gone meanwhile, or a kernel thread
            (leaf / "cgroup.procs").write_text(pid)
    try:
        return not (own / "cgroup.procs").read_text().split()
    except OSError:
        return False


def delegate(own: Path, *path: str) -> frozenset[str]:
    """Enable the sandbox's controllers from `own` down to `own/<path...>`; returns the ones
    its children get (empty when the host offers none or refuses)."""
    wanted = V2_CONTROLLERS & controllers(own)
    if not wanted:
        return frozenset()
    enabled = enable(own, wanted)
    if enabled != wanted and evacuate(own):
        enabled = enable(own, wanted)
    folder = own
    for part in path:
        folder = folder / part
        try:
            folder.mkdir(exist_ok=True)
        except OSError:
            return frozenset()
        enabled = enable(folder, enabled)
    return enabled
