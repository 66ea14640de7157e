"""The bubblewrap sandbox for real: isolation, harvesting, limits and the setup phase."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.domain import FileChange
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.errors import ProvisionFailed
from codefactory.sandbox.port import Phase
from codefactory.sandbox.setup import dependency_files, install_dependencies
from tests.conftest import git, make_repo

pytestmark = pytest.mark.usefixtures("bwrap_available")

FILES = {
    "README.md": "hello\n",
    "pkg/mod.py": "VALUE = 1\n",
    "pkg/sub/deep.py": "DEEP = 2\n",
    "requirements.txt": "idna==3.7\n",
}


@pytest.fixture
def sandbox(tmp_path: Path) -> BubblewrapSandbox:
    return BubblewrapSandbox(tmp_path / "work", tmp_path / "cache", max_output_bytes=10_000)


@pytest.fixture
def workspace(tmp_path: Path, sandbox: BubblewrapSandbox) -> Iterator[BubblewrapWorkspace]:
    make_repo(tmp_path / "repo", FILES)
    ws = sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id="r1")
    yield ws
    ws.destroy()


def run(ws: BubblewrapWorkspace, script: str, phase: Phase = Phase.ENGINE, timeout: float = 30):
    return ws.exec(["sh", "-c", script], phase=phase, timeout_s=timeout)


def test_the_workspace_is_the_repository_at_its_base_commit(
    tmp_path: Path, workspace: BubblewrapWorkspace
) -> None:
    assert workspace.base_commit == git(tmp_path / "repo", "rev-parse", "HEAD")
    listing = run(workspace, "find . -type f | sort")
    assert listing.stdout.split() == sorted(f"./{name}" for name in FILES)
    assert run(workspace, "pwd").stdout.strip() == "/workspace"


def test_commands_run_unprivileged_with_no_network(workspace: BubblewrapWorkspace) -> None:
    host_ids = workspace.mounts.ids  # as root: an unprivileged host id, never a mapping
    expected = str(host_ids.uid) if host_ids else "65534"
    assert run(workspace, "id -u").stdout.strip() == expected
    if host_ids:
        assert run(workspace, "cat /proc/self/uid_map").stdout.split()[:2] == ["0", "0"]
        assert run(workspace, "stat -c %u .").stdout.strip() == expected
    assert run(workspace, "grep CapEff /proc/self/status").stdout.split()[1] == "0000000000000000"
    resolve = workspace.exec(
        ["python3", "-c", "import socket; socket.getaddrinfo('pypi.org', 443)"], phase=Phase.ENGINE
    )
    assert resolve.exit_code != 0 and "gaierror" in resolve.stderr
    interfaces = run(workspace, "cat /proc/net/dev").stdout
    assert "lo:" in interfaces and "eth" not in interfaces


def test_the_host_is_not_visible(workspace: BubblewrapWorkspace, tmp_path: Path) -> None:
    assert run(workspace, "ls /root").exit_code != 0
    assert run(workspace, "cat /etc/shadow").exit_code != 0
    assert run(workspace, f"ls {tmp_path}").exit_code != 0
    processes = set(run(workspace, "ps -e -o comm=").stdout.split())
    assert processes <= {"bwrap", "sh", "ps"}, processes  # no host process is visible
    assert "CODEFACTORY" not in run(workspace, "env").stdout
    assert run(workspace, "touch /usr/evil").exit_code != 0


def test_changes_are_harvested_from_the_overlay(workspace: BubblewrapWorkspace) -> None:
    result = run(
        workspace,
        "echo 'VALUE = 2' > pkg/mod.py && rm README.md && rm -r pkg/sub && "
        "mkdir -p new && echo x > new/file.txt && "
        "mkdir -p __pycache__ && echo c > __pycache__/a.pyc",
    )
    assert result.ok, result.stderr
    change = workspace.changes()
    assert change.files == (
        FileChange(path="README.md", content=None),
        FileChange(path="new/file.txt", content=b"x\n"),
        FileChange(path="pkg/mod.py", content=b"VALUE = 2\n"),
        FileChange(path="pkg/sub/deep.py", content=None),
    )


def test_writing_the_same_content_back_is_no_change(workspace: BubblewrapWorkspace) -> None:
    workspace.write_file("pkg/mod.py", b"VALUE = 1\n")
    assert workspace.changes().is_empty
    assert workspace.read_file("pkg/mod.py") == b"VALUE = 1\n"
    assert workspace.read_file("missing.txt") is None


def test_file_helpers_refuse_paths_outside_the_workspace(workspace: BubblewrapWorkspace) -> None:
    with pytest.raises(ValueError, match="relative"):
        workspace.write_file("../escape", b"x")
    with pytest.raises(ValueError, match="relative"):
        workspace.read_file("/etc/passwd")


def test_a_timeout_kills_the_command(workspace: BubblewrapWorkspace) -> None:
    result = run(workspace, "sleep 30", timeout=0.5)
    assert result.timed_out and not result.ok
    assert result.duration_s < 10


def test_output_is_capped(workspace: BubblewrapWorkspace) -> None:
    result = run(workspace, "yes | head -c 100000")
    assert len(result.stdout) < 10_100
    assert "output limit" in result.stdout


def test_destroy_leaves_nothing_on_the_host(workspace: BubblewrapWorkspace, tmp_path: Path) -> None:
    run(workspace, "echo x > a")
    workspace.destroy()
    assert not (tmp_path / "work" / "r1").exists()
    with open("/proc/mounts") as mounts:
        assert str(tmp_path) not in mounts.read()


def test_a_folder_that_is_not_a_repository_is_refused(
    tmp_path: Path, sandbox: BubblewrapSandbox
) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(ProvisionFailed, match="not a git repository"):
        sandbox.provision(repo=tmp_path / "plain", commit="HEAD", run_id="x")
    with pytest.raises(ProvisionFailed, match="does not exist"):
        sandbox.provision(repo=tmp_path / "absent", commit="HEAD", run_id="x")
    make_repo(tmp_path / "repo", {"a": "b"})
    with pytest.raises(ProvisionFailed, match="no commit"):
        sandbox.provision(repo=tmp_path / "repo", commit="does-not-exist", run_id="x")
    assert not list((tmp_path / "work").glob("*")) if (tmp_path / "work").exists() else True


def test_git_hooks_and_history_never_reach_the_workspace(
    tmp_path: Path, sandbox: BubblewrapSandbox
) -> None:
    make_repo(tmp_path / "repo", FILES)
    hook = tmp_path / "repo" / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path}/hook-ran\n")
    hook.chmod(0o755)
    ws = sandbox.provision(repo=tmp_path / "repo", commit="HEAD", run_id="h")
    try:
        assert run(ws, "test -e .git").exit_code != 0
    finally:
        ws.destroy()
    assert not (tmp_path / "hook-ran").exists()


def test_setup_installs_dependencies_and_only_setup_has_network(
    workspace: BubblewrapWorkspace,
) -> None:
    installed = install_dependencies(workspace, timeout_s=300)
    assert installed == ["requirements.txt"]
    version = workspace.exec(
        ["python", "-c", "import idna; print(idna.__version__)"], phase=Phase.CHECK
    )
    assert version.stdout.strip() == "3.7"
    assert run(workspace, "touch /env/x", phase=Phase.ENGINE).exit_code != 0
    assert workspace.changes().is_empty


def test_dependency_files_are_recognised() -> None:
    assert dependency_files(["requirements-dev.txt", "src/a.py", "pyproject.toml"]) == [
        "requirements-dev.txt",
        "pyproject.toml",
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="the overlay path needs root; the copy path runs")
def test_overlay_is_used_as_root(workspace: BubblewrapWorkspace) -> None:
    assert workspace.overlay


def test_the_unprivileged_user_may_use_tmp_and_posix_semaphores(
    workspace: BubblewrapWorkspace,
) -> None:
    code = "import multiprocessing as m, tempfile; m.Lock(); tempfile.mkstemp(); print('ok')"
    result = workspace.exec(["python3", "-c", code], phase=Phase.CHECK)
    assert result.stdout.strip() == "ok", result.stderr
