"""Run one sandbox process to its end or to the first limit it breaks, then kill its tree.

The supervisor reads output as it comes (so a flood of output never fills the host's memory),
polls the command's cgroup and its disk layer, and on any breach kills the whole tree: the
outer process group (bubblewrap, whose `--die-with-parent` child is the PID namespace's init,
so the kernel kills everything inside) and then every member of the cgroup.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codefactory.sandbox.cgroups import CommandCgroup
from codefactory.sandbox.limits import LimitHit, Limits, limit_from_exit

POLL_S = 0.05
OUTPUT_CUT = b"\n[output cut by the sandbox's output limit]\n"


@dataclass
class Outcome:
    """What the supervisor saw: exit status, captured output and the limit hit, if any."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    limit_hit: LimitHit | None
    started: bool
    duration_s: float
    status: list[dict[str, object]] = field(default_factory=list)


@dataclass
class _Streams:
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    status: bytearray = field(default_factory=bytearray)


def supervise(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: bytes | None,
    limits: Limits,
    cgroup: CommandCgroup | None = None,
    disk: Path | None = None,
    status_pipe: tuple[int, int] | None = None,
    pass_fds: Sequence[int] = (),
) -> Outcome:
    """Run `argv` under `limits`; `status_pipe` is bubblewrap's `--json-status-fd` pipe;
    `pass_fds` are other fds the child inherits (the seccomp filter's)."""
    started_at = time.monotonic()
    if _disk_full(disk):
        disk = None  # full before it began: this command is not the one that filled it
    try:
        proc = subprocess.Popen(  # noqa: S603 - argv is built by the sandbox, not a shell string
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
            pass_fds=(*pass_fds, *((status_pipe[1],) if status_pipe is not None else ())),
        )
    except BaseException:
        for fd in status_pipe or ():
            os.close(fd)
        raise
    if status_pipe is not None:
        os.close(status_pipe[1])
    if stdin is not None:
        threading.Thread(target=_feed, args=(proc, stdin), daemon=True).start()
    streams = _Streams()
    status_read = status_pipe[0] if status_pipe is not None else None
    try:
        hit = _pump(proc, streams, status_read, limits, cgroup, disk, started_at)
    finally:
        if status_read is not None:
            os.close(status_read)
    if hit is not None:
        _kill_tree(proc, cgroup)
    code = _wait(proc, cgroup)
    if hit is None and cgroup is not None:
        hit = cgroup.breach(limits)
    hit = hit or limit_from_exit(code) or (LimitHit.DISK if _disk_full(disk) else None)
    status = _parse_status(bytes(streams.status))
    return Outcome(
        exit_code=code,
        stdout=_cut(streams.out, limits.output_bytes),
        stderr=_cut(streams.err, limits.output_bytes),
        limit_hit=hit,
        started=status_pipe is None or any("child-pid" in doc for doc in status),
        duration_s=time.monotonic() - started_at,
        status=status,
    )


def _pump(
    proc: subprocess.Popen[bytes],
    streams: _Streams,
    status_read: int | None,
    limits: Limits,
    cgroup: CommandCgroup | None,
    disk: Path | None,
    started_at: float,
) -> LimitHit | None:
    """Read both streams until they close or a limit breaks; returns the limit."""
    assert proc.stdout is not None and proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ, streams.out)
    selector.register(proc.stderr, selectors.EVENT_READ, streams.err)
    if status_read is not None:
        selector.register(status_read, selectors.EVENT_READ, streams.status)
    deadline = started_at + limits.wall_s
    try:
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return LimitHit.WALL_CLOCK
            for key, _ in selector.select(min(POLL_S, remaining)):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                key.data.extend(data)
                if key.data is not streams.status and len(key.data) > limits.output_bytes:
                    return LimitHit.OUTPUT
            hit = cgroup.breach(limits) if cgroup is not None else None
            if hit is not None or _disk_full(disk):
                return hit or LimitHit.DISK
        return None
    finally:
        selector.close()


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(OSError):
        proc.stdin.write(data)
    with contextlib.suppress(OSError):
        proc.stdin.close()


def _kill_tree(proc: subprocess.Popen[bytes], cgroup: CommandCgroup | None) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill()


def _wait(proc: subprocess.Popen[bytes], cgroup: CommandCgroup | None) -> int:
    """Reap the process; a tree that outlives its streams is killed, not waited for."""
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _kill_tree(proc, cgroup)
        code = proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return 128 - code if code < 0 else code


def _disk_full(disk: Path | None) -> bool:
    if disk is None:
        return False
    try:
        usage = os.statvfs(disk)
    except OSError:
        return False
    return usage.f_bavail == 0 or usage.f_favail == 0


def _cut(data: bytearray, cap: int) -> bytes:
    if len(data) <= cap:
        return bytes(data)
    return bytes(data[:cap]) + OUTPUT_CUT


def _parse_status(raw: bytes) -> list[dict[str, object]]:
    docs: list[dict[str, object]] = []
    decoder = json.JSONDecoder()
    text, index = raw.decode("utf-8", "replace"), 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            break
        try:
            doc, index = decoder.raw_decode(text, index)
        except ValueError:
            break
        if isinstance(doc, dict):
            docs.append(doc)
    return docs
