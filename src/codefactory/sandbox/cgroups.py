"""One control group per sandboxed command: memory, process and CPU caps over the whole tree.

Detected once per process, at the sandbox's start. Each limit is set where its controller
lives, so v1, v2 and hybrid hosts are all served:

| limit | cgroup v1 | cgroup v2 |
| --- | --- | --- |
| memory | `memory.limit_in_bytes`, `memsw`; oom_kill | `memory.max`, `swap.max` 0; oom_kill |
| processes | `pids.max`, `pids.events` max | `pids.max`, `pids.events` max |
| CPU time | `cpuacct.usage` (ns) | `cpu.stat` usage_usec (core stats: no controller) |
| kill all | SIGKILL to each member | `cgroup.kill` |

Groups are created under the factory's own group (`<own>/codefactory/<pid>/c<n>`), so the
host's limits on the factory still hold. On v2 the controllers must be enabled in each
parent's `cgroup.subtree_control` (`cgroup_v2.py` delegates them, moving the processes of
our own group into a leaf first: a v2 group with members cannot hand controllers down).
Without writable cgroups the rlimit fallback applies (see `limits.py`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from codefactory.sandbox.cgroup_v2 import delegate
from codefactory.sandbox.limits import LimitHit, Limits

CONTROLLERS = ("memory", "pids", "cpuacct")
GROUP = "codefactory"
_counter = itertools.count()


@dataclass(frozen=True)
class CgroupRoots:
    """The folders under which this process may create command groups, per controller."""

    v1: dict[str, Path]
    unified: Path | None
    v2_controllers: frozenset[str] = frozenset()
    """Controllers enabled for the command groups under `unified`."""

    @property
    def available(self) -> bool:
        return bool(self.v1) or self.unified is not None

    @property
    def limits_memory(self) -> bool:
        return "memory" in self.v1 or "memory" in self.v2_controllers


def _own_paths() -> tuple[dict[str, str], str | None]:
    v1: dict[str, str] = {}
    unified = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if not controllers:
            unified = path
        for name in controllers.split(","):
            v1[name] = path
    return v1, unified


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fs type, super options) of every cgroup mount."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        parts, extra = fields.split(), rest.split()
        if len(extra) >= 3 and extra[0] in ("cgroup", "cgroup2"):
            found.append((parts[3], parts[4], extra[0], set(extra[2].split(","))))
    return found


def _usable(mount_root: str, mount_point: str, own: str) -> Path | None:
    if not own.startswith(mount_root):
        return None
    group = Path(mount_point) / own[len(mount_root) :].lstrip("/") / GROUP
    base = group / str(os.getpid())
    try:
        base.mkdir(parents=True, exist_ok=True)
        _sweep(group)
    except OSError:
        return None
    return base if os.access(base, os.W_OK) else None


@cache
def discover() -> CgroupRoots:
    """The writable cgroup folders for this process (cached); empty when there are none."""
    try:
        own_v1, own_unified = _own_paths()
        mounts = _mounts()
    except OSError:
        return CgroupRoots(v1={}, unified=None)
    v1: dict[str, Path] = {}
    unified = None
    controllers: frozenset[str] = frozenset()
    for root, point, fstype, options in mounts:
        if fstype == "cgroup2" and own_unified is not None and unified is None:
            own = _own_folder(root, point, own_unified)
            if own is not None:
                controllers = delegate(own, GROUP, str(os.getpid()))
                unified = _usable(root, point, own_unified)
        for name in CONTROLLERS:
            if fstype == "cgroup" and name in options and name in own_v1:
                base = _usable(root, point, own_v1[name])
                if base is not None:
                    v1[name] = base
    return CgroupRoots(v1=v1, unified=unified, v2_controllers=controllers - set(v1))


def _own_folder(mount_root: str, mount_point: str, own: str) -> Path | None:
    if not own.startswith(mount_root):
        return None
    return Path(mount_point) / own[len(mount_root) :].lstrip("/")


def _sweep(group: Path) -> None:
    """Remove the empty groups left by factory processes that died mid-command."""
    for owner in group.iterdir():
        if owner.name.isdigit() and not Path(f"/proc/{owner.name}").exists():
            for child in owner.glob("*/"):
                with contextlib.suppress(OSError):
                    child.rmdir()
            with contextlib.suppress(OSError):
                owner.rmdir()


class CommandCgroup:
    """The groups of one command: created before it starts, removed once it is gone."""

    def __init__(self, dirs: dict[str, Path], v2: frozenset[str] = frozenset()) -> None:
        self.dirs = dirs
        self.v2 = v2
        """Controllers whose files are in the unified group rather than a v1 one."""

    @classmethod
    def create(cls, roots: CgroupRoots, limits: Limits) -> CommandCgroup:
        name = f"c{next(_counter)}"
        bases = dict(roots.v1) | ({"unified": roots.unified} if roots.unified else {})
        group = cls({key: base / name for key, base in bases.items()}, roots.v2_controllers)
        try:
            for folder in group.dirs.values():
                folder.mkdir()
            group._limit(limits)
        except OSError:
            group.remove()
            raise
        return group

    def _limit(self, limits: Limits) -> None:
        if "memory" in self.v2:
            self._write("unified", "memory.max", limits.memory_bytes)
            with contextlib.suppress(OSError):  # absent without swap accounting
                self._write("unified", "memory.swap.max", 0)
        else:
            self._write("memory", "memory.limit_in_bytes", limits.memory_bytes)
            with contextlib.suppress(OSError):  # absent without swap accounting
                self._write("memory", "memory.memsw.limit_in_bytes", limits.memory_bytes)
        self._write("unified" if "pids" in self.v2 else "pids", "pids.max", limits.processes)

    @property
    def procs_files(self) -> list[str]:
        """Files the command's first process writes its pid into."""
        return [str(folder / "cgroup.procs") for folder in self.dirs.values()]

    def _write(self, key: str, name: str, value: int) -> None:
        if key in self.dirs:
            (self.dirs[key] / name).write_text(str(value))

    def _read(self, key: str, name: str) -> str:
        try:
            return (self.dirs[key] / name).read_text() if key in self.dirs else ""
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        if "cpuacct" in self.dirs:
            usage = self._read("cpuacct", "cpuacct.usage").strip()
            return int(usage) / 1e9 if usage.isdigit() else 0.0
        return _counter_of(self._read("unified", "cpu.stat"), "usage_usec") / 1e6

    def breach(self, limits: Limits) -> LimitHit | None:
        """The cgroup-enforced limit the tree ran into, if any."""
        memory = ("unified", "memory.events") if "memory" in self.v2 else (
            "memory", "memory.oom_control")  # fmt: skip
        if _counter_of(self._read(*memory), "oom_kill") > 0:
            return LimitHit.MEMORY
        pids = "unified" if "pids" in self.v2 else "pids"
        if _counter_of(self._read(pids, "pids.events"), "max") > 0:
            return LimitHit.PROCESSES
        measured = "cpuacct" in self.dirs or "unified" in self.dirs
        if measured and self.cpu_seconds() >= limits.cpu_s:
            return LimitHit.CPU
        return None

    def pids(self) -> list[int]:
        text = "".join(self._read(key, "cgroup.procs") for key in self.dirs)
        return sorted({int(pid) for pid in text.split()})

    def kill(self) -> None:
        """SIGKILL every member; `cgroup.kill` where the v2 hierarchy offers it."""
        if "unified" in self.dirs:
            with contextlib.suppress(OSError):
                (self.dirs["unified"] / "cgroup.kill").write_text("1")
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, wait_s: float = 5.0) -> None:
        """Kill what is left, wait for the group to empty, remove its folders."""
        deadline = time.monotonic() + wait_s
        while self.pids() and time.monotonic() < deadline:
            self.kill()
            time.sleep(0.001)
        for folder in self.dirs.values():
            with contextlib.suppress(FileNotFoundError):
                _rmdir_retrying(folder, deadline)


def _rmdir_retrying(folder: Path, deadline: float) -> None:
    while True:
        try:
            folder.rmdir()
            return
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.001)


def _counter_of(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0
