"""Limits and the process tree: configurable per sandbox and per call, named when hit,
nothing left running, nothing left mounted, no cgroup left behind."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from codefactory.sandbox.backends import build_sandbox, limits_of
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.cgroups import discover
from codefactory.sandbox.layers import sweep_stale
from codefactory.sandbox.limits import MIB, Limits
from codefactory.sandbox.port import Phase
from codefactory.sandbox.settings import LimitSettings, SandboxSettings
from tests.conftest import make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    make_repo(tmp_path / "repo", {"app.py": "print('hi')\n"})
    return tmp_path / "repo"


@pytest.fixture
def workspace(tmp_path: Path, repo: Path) -> Iterator[BubblewrapWorkspace]:
    sandbox = BubblewrapSandbox(
        tmp_path / "work", tmp_path / "cache", limits=Limits(memory_bytes=512 * MIB)
    )
    ws = sandbox.provision(repo=repo, commit="HEAD", run_id="r1")
    yield ws
    ws.destroy()


def sh(ws: BubblewrapWorkspace, script: str, **kw: object):
    return ws.exec(["sh", "-c", script], phase=Phase.ENGINE, timeout_s=30, **kw)  # type: ignore[arg-type]


def test_settings_reach_every_command(tmp_path: Path, repo: Path) -> None:
    settings = SandboxSettings(limits=LimitSettings(processes=40, memory_bytes=300 * MIB))
    assert limits_of(settings).processes == 40
    sandbox = build_sandbox(settings, data_dir=tmp_path)
    ws = sandbox.provision(repo=repo, commit="HEAD", run_id="r1")
    try:
        bomb = ws.exec(["sh", "-c", "f(){ f|f& }; f; sleep 20"], phase=Phase.ENGINE)
        assert bomb.limit_hit == "processes" and not bomb.ok
    finally:
        ws.destroy()


def test_a_call_overrides_the_limits_for_itself(workspace: BubblewrapWorkspace) -> None:
    code = ["python3", "-c", "b = bytearray(200 * 1024 * 1024)"]
    assert workspace.exec(code, phase=Phase.ENGINE).ok
    tight = workspace.exec(code, phase=Phase.ENGINE, limits=Limits(memory_bytes=100 * MIB))
    assert tight.limit_hit == "memory"
    assert workspace.exec(code, phase=Phase.ENGINE).ok


def test_without_cgroups_rlimits_still_bind(tmp_path: Path, repo: Path) -> None:
    sandbox = BubblewrapSandbox(
        tmp_path / "work", tmp_path / "cache", limits=Limits(memory_bytes=256 * MIB), cgroups=False
    )
    ws = sandbox.provision(repo=repo, commit="HEAD", run_id="r1")
    try:
        big = ws.exec(["python3", "-c", "bytearray(512 * 1024 * 1024)"], phase=Phase.ENGINE)
        assert "MemoryError" in big.stderr  # RLIMIT_AS: the allocation fails, nothing is named
        spin = ws.exec(["sh", "-c", "while :; do :; done"], phase=Phase.ENGINE,
                       limits=Limits(cpu_s=1))  # fmt: skip
        assert spin.limit_hit == "cpu"  # RLIMIT_CPU's SIGXCPU
    finally:
        ws.destroy()


def test_the_tree_is_gone_and_the_cgroup_removed_when_exec_returns(
    workspace: BubblewrapWorkspace,
) -> None:
    result = sh(workspace, "sleep 300 & sleep 301 & echo $$")
    assert result.ok
    roots = discover()
    for base in [*roots.v1.values(), *([roots.unified] if roots.unified else [])]:
        assert not [p for p in base.iterdir() if p.is_dir()], f"cgroup left in {base}"
    # SIGKILL is sent before exec returns; on a loaded machine the kernel may take a moment
    # to end a killed process: a survivor is one still there after two seconds.
    deadline = time.monotonic() + 2
    while (left := _sleepers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left


def _sleepers() -> list[str]:
    return [
        pid
        for pid in filter(str.isdigit, os.listdir("/proc"))
        if b"sleep\x00300" in _cmdline(pid) or b"sleep\x00301" in _cmdline(pid)
    ]


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_the_sandbox_is_its_own_host(workspace: BubblewrapWorkspace) -> None:
    result = sh(workspace, "hostname; echo $$; ls /proc | grep -c '^[0-9]'; ipcs -q | wc -l")
    hostname, pid, processes, *_ = result.stdout.split()
    assert hostname == "sandbox"
    assert int(pid) <= 3 and int(processes) <= 4  # a new PID namespace: only the command's tree


def test_commands_may_run_at_once_in_one_workspace(workspace: BubblewrapWorkspace) -> None:
    def write(i: int) -> str:
        return sh(workspace, f"echo {i} > f{i} && sleep 0.2 && cat f{i}").stdout.strip()

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(write, range(6))) == [str(i) for i in range(6)]
    assert workspace.changes().paths == tuple(f"f{i}" for i in range(6))


def test_destroy_unmounts_everything_and_a_dead_owners_workspace_is_swept(
    tmp_path: Path, repo: Path
) -> None:
    sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")
    kept = sandbox.provision(repo=repo, commit="HEAD", run_id="kept")
    orphan = sandbox.provision(repo=repo, commit="HEAD", run_id="orphan")
    assert str(orphan.home.path) in Path("/proc/mounts").read_text()
    os.close(orphan.home._lock_fd)  # what the owner's death does to its lock  # noqa: SLF001
    orphan.home._lock_fd = None  # noqa: SLF001
    sweep_stale(tmp_path / "work", min_age_s=0)  # what a new sandbox does (for older ones)
    mounts = Path("/proc/mounts").read_text()
    assert not orphan.home.path.exists() and str(orphan.home.path) not in mounts
    assert kept.home.path.exists() and str(kept.home.path) in mounts
    kept.destroy()
    assert str(tmp_path) not in Path("/proc/mounts").read_text()
    assert not any((tmp_path / "work").iterdir())
