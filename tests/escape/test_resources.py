"""Ways to exhaust the host: fork bombs, memory, disk, CPU, time, output, processes left
behind. Each must be stopped by its limit, name it, and leave nothing running."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.port import Phase
from tests.escape.conftest import Escape


def sh(ws: BubblewrapWorkspace, script: str, timeout: float = 30):
    return ws.exec(["sh", "-c", script], phase=Phase.ENGINE, timeout_s=timeout)


def host_processes(marker: str) -> list[str]:
    """Host processes whose command line holds `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            found.append(f"{pid}: {cmdline.strip()}")
    return found


def test_fork_bomb(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = sh(workspace, "f(){ f|f& }; f; sleep 20")
    escape.attempt(
        "fork bomb",
        expected="processes limit, tree killed",
        observed=f"limit_hit={result.limit_hit} in {result.duration_s:.2f}s",
        blocked=result.limit_hit == "processes" and result.duration_s < 10,
    )


def test_memory(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    code = "b = bytearray(1024 * 1024 * 1024); print(len(b))"
    result = workspace.exec(["python3", "-c", code], phase=Phase.ENGINE, timeout_s=30)
    escape.attempt(
        "allocate 1 GiB past a 256 MiB limit",
        expected="memory limit",
        observed=f"limit_hit={result.limit_hit}, exit {result.exit_code}",
        blocked=result.limit_hit == "memory" and not result.ok,
    )


def test_fill_the_disk(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    free_before = shutil.disk_usage(workspace.home.path).free
    result = sh(workspace, "i=0; while head -c 8000000 /dev/zero > f$i; do i=$((i+1)); done")
    free_after = shutil.disk_usage(workspace.home.path).free
    escape.attempt(
        "fill the disk",
        expected="disk limit (64 MiB layer)",
        observed=f"limit_hit={result.limit_hit}; host disk {free_before - free_after:+d} bytes",
        blocked=result.limit_hit == "disk" and free_before - free_after < 32 * 1024 * 1024,
    )


def test_a_huge_file(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = sh(workspace, "head -c 40000000 /dev/zero > big")
    escape.attempt(
        "write one file past the file-size limit",
        expected="file-size limit",
        observed=f"limit_hit={result.limit_hit}, exit {result.exit_code}",
        blocked=result.limit_hit == "file-size",
    )


def test_run_past_the_timeout(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = sh(workspace, "sleep 60", timeout=0.5)
    escape.attempt(
        "run past the timeout",
        expected="wall-clock limit",
        observed=f"limit_hit={result.limit_hit} after {result.duration_s:.2f}s",
        blocked=result.timed_out and result.limit_hit == "wall-clock" and result.duration_s < 5,
    )


def test_burn_cpu_in_many_processes(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    script = "for i in 1 2 3 4; do (while :; do :; done) & done; wait"
    result = sh(workspace, script, timeout=30)
    escape.attempt(
        "burn CPU in 4 processes past 2 s",
        expected="cpu limit over the tree",
        observed=f"limit_hit={result.limit_hit} after {result.duration_s:.2f}s wall",
        blocked=result.limit_hit == "cpu" and result.duration_s < 25,
    )


def test_flood_the_output(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = sh(workspace, "yes escape")
    escape.attempt(
        "flood the output",
        expected="output limit (1 MB kept)",
        observed=f"limit_hit={result.limit_hit}, kept {len(result.stdout)} chars",
        blocked=result.limit_hit == "output" and len(result.stdout) < 1_100_000,
    )


def test_leave_a_background_process_behind(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    script = (
        "sleep 731.5 & nohup sleep 731.6 >/dev/null 2>&1 & "
        "setsid sh -c 'sleep 731.7 & sleep 731.8' >/dev/null 2>&1 & "
        "(sh -c 'sleep 731.9 &' &) ; echo started"
    )
    result = sh(workspace, script)
    left = host_processes("sleep 731.")
    escape.attempt(
        "leave a background process behind",
        expected="none outlives exec",
        observed=f"{len(left)} left after exec returned",
        blocked=result.ok and not left,
    )


def _mounts_under(path: Path) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(str(path))]  # fmt: skip


def test_a_million_small_files(
    escape_sandbox: BubblewrapSandbox, escape_repo: Path, escape: Escape
) -> None:
    workspace = escape_sandbox.provision(repo=escape_repo, commit="HEAD", run_id="esc-inodes")
    home = workspace.home.path
    script = "python3 -c \"[open(f'f{i}', 'w').close() for i in range(1_000_000)]\""
    result = sh(workspace, script, timeout=60)
    workspace.destroy()
    left = _mounts_under(home)
    escape.attempt(
        "write a million small files",
        expected="disk limit (inodes), no mount left",
        observed=f"limit_hit={result.limit_hit}; mounts left {len(left)}; home {home.exists()}",
        blocked=result.limit_hit == "disk" and not left and not home.exists(),
    )


def test_hard_links_out_of_the_workspace(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = sh(workspace, "ln /usr/bin/id id; ln /env/bin/python3 py; ln /etc/passwd pw; ls")
    escape.attempt(
        "hard-link host files into the workspace",
        expected="cross-device link refused",
        observed=(result.stderr.strip().splitlines() or [""])[0][:70],
        blocked=result.stdout.split()
        == ["README.md", "app.py", "host-link", "root-link", "shadow-link"],  # fmt: skip
    )
