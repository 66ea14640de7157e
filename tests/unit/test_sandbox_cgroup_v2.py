"""The cgroup v2 paths, on a folder laid out like the unified hierarchy's files.

This machine binds every controller to cgroup v1, so no real v2 group can get memory or pids
limits here (docs/sandbox.md says so); these tests pin the file names and formats the
kernel's cgroup-v2 documentation gives, and the order of delegation. A real v2 host runs
`tests/integration/test_sandbox_limits.py` against the kernel itself.
"""

from __future__ import annotations

from pathlib import Path

from codefactory.sandbox.cgroup_v2 import delegate
from codefactory.sandbox.cgroups import CgroupRoots, CommandCgroup
from codefactory.sandbox.limits import LimitHit, Limits


def _group(folder: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cgroup.controllers").write_text(controllers + "\n")
    (folder / "cgroup.subtree_control").write_text("")
    (folder / "cgroup.procs").write_text("")
    return folder


def test_no_controllers_offered_means_no_v2_limits(tmp_path: Path) -> None:
    own = _group(tmp_path / "own", controllers="")
    assert delegate(own, "codefactory", "1") == frozenset()


def test_a_command_group_sets_and_reads_the_v2_files(tmp_path: Path) -> None:
    base = _group(tmp_path / "base")
    roots = CgroupRoots(v1={}, unified=base, v2_controllers=frozenset({"memory", "pids"}))
    limits = Limits(memory_bytes=256 << 20, processes=64, cpu_s=1.0)
    group = CommandCgroup.create(roots, limits)
    folder = group.dirs["unified"]
    assert (folder / "memory.max").read_text() == str(256 << 20)
    assert (folder / "pids.max").read_text() == "64"
    assert group.breach(limits) is None
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert group.breach(limits) is LimitHit.MEMORY
    (folder / "memory.events").write_text("oom_kill 0\n")
    (folder / "pids.events").write_text("max 2\n")
    assert group.breach(limits) is LimitHit.PROCESSES
    (folder / "pids.events").write_text("max 0\n")
    (folder / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n")
    assert group.cpu_seconds() == 1.5
    assert group.breach(limits) is LimitHit.CPU
