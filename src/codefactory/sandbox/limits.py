"""Resource limits of one sandboxed command, and the name of the limit a command ran into.

Which mechanism binds each limit (measured on the machine this was written on, as root with
bubblewrap mapping the sandbox's uid 65534 to root outside):

| limit | bound by | fallback without cgroups |
| --- | --- | --- |
| wall clock | the supervisor's deadline, then the whole tree is killed | same |
| CPU time | cgroup `cpuacct.usage` over the whole tree, polled | `RLIMIT_CPU` per process |
| memory | cgroup `memory.limit_in_bytes` (+ `memsw`), OOM kill counted | `RLIMIT_AS` per process |
| processes | cgroup `pids.max` | none: `RLIMIT_NPROC` does not bind root-mapped uids |
| output | the supervisor stops reading and kills the tree | same |
| file size | `RLIMIT_FSIZE` (SIGXFSZ) | same |
| disk | the workspace's upper layer is a `tmpfs` of that size (ENOSPC) | same |
"""

from __future__ import annotations

import dataclasses
import enum
import signal
from dataclasses import dataclass

GIB = 1024**3
MIB = 1024**2


class LimitHit(enum.StrEnum):
    """The limit a command ran into; recorded in `ExecResult.limit_hit`."""

    WALL_CLOCK = "wall-clock"
    CPU = "cpu"
    MEMORY = "memory"
    PROCESSES = "processes"
    OUTPUT = "output"
    FILE_SIZE = "file-size"
    DISK = "disk"


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one command may use; every field is a hard cap that kills the whole tree."""

    wall_s: float = 300.0
    cpu_s: float = 600.0
    memory_bytes: int = 2 * GIB
    processes: int = 512
    output_bytes: int = 4_000_000
    file_bytes: int = GIB

    def but(self, **changes: float | int | None) -> Limits:
        """A copy with the given fields replaced; `None` values are ignored."""
        given = {name: value for name, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given)  # type: ignore[arg-type]


def limit_from_exit(exit_code: int) -> LimitHit | None:
    """The rlimit a command died of, from its shell-style exit status (128 + signal)."""
    by_signal = {signal.SIGXCPU: LimitHit.CPU, signal.SIGXFSZ: LimitHit.FILE_SIZE}
    if exit_code > 128:
        try:
            return by_signal.get(signal.Signals(exit_code - 128))
        except ValueError:
            return None
    return None


def ulimit_script(limits: Limits, *, address_space: bool) -> str:
    """Shell lines (dash: one flag per `ulimit`) applying the per-process rlimits."""
    cpu = max(1, int(limits.cpu_s + 0.999))
    lines = [
        "ulimit -c 0",
        f"ulimit -S -t {cpu}",  # SIGXCPU at the soft limit names the limit; SIGKILL after
        f"ulimit -H -t {cpu + 1}",
        f"ulimit -f {max(1, limits.file_bytes // 512)}",  # dash counts 512-byte blocks
    ]
    if address_space:
        lines.append(f"ulimit -v {max(1, limits.memory_bytes // 1024)}")
    return "\n".join(lines)
