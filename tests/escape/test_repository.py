"""Ways out through what the repository carries or what the engine leaves in the workspace:
symbolic links to host paths, git hooks and configuration for the factory to trip over."""

from __future__ import annotations

from pathlib import Path

from codefactory.review.local_forge import LocalForge
from codefactory.sandbox.bubblewrap import BubblewrapWorkspace
from codefactory.sandbox.port import Phase
from tests.escape.conftest import Escape


def sh(ws: BubblewrapWorkspace, script: str):
    return ws.exec(["sh", "-c", script], phase=Phase.ENGINE, timeout_s=20)


def test_follow_a_committed_symlink_inside(
    workspace: BubblewrapWorkspace, escape: Escape, host_dir: Path
) -> None:
    result = sh(workspace, "cat shadow-link; ls root-link/; cat host-link/victim.txt")
    escape.attempt(
        "follow committed symlinks to host paths",
        expected="dangling inside",
        observed=(result.stderr.strip().splitlines() or ["?"])[-1][:70],
        blocked="host content" not in result.stdout and result.exit_code != 0,
    )


def test_harvest_and_forge_never_follow_a_symlink(
    workspace: BubblewrapWorkspace,
    escape: Escape,
    host_dir: Path,
    tmp_path: Path,
    escape_repo: Path,
) -> None:
    script = "rm host-link && mkdir host-link && echo pwned > host-link/victim.txt"
    assert sh(workspace, script).ok
    change = workspace.changes()
    forge = LocalForge(tmp_path / "forge")
    commit = forge.open_change(
        repo=escape_repo,
        base_commit=workspace.base_commit,
        branch="escape/symlink",
        change=change,
        message="escape",
        author_name="agent",
        author_email="agent@example.invalid",
    )
    host_file = (host_dir / "victim.txt").read_text()
    escape.attempt(
        "write through a committed symlink (harvest, forge)",
        expected="host file untouched",
        observed=f"change {list(change.paths)}; host file {host_file.strip()!r}",
        blocked=host_file == "host content\n"
        and set(change.paths) == {"host-link", "host-link/victim.txt"}
        and bool(commit),
    )


def test_git_hooks_that_run_on_the_host_later(
    workspace: BubblewrapWorkspace, escape: Escape, tmp_path: Path, escape_repo: Path
) -> None:
    marker = tmp_path / "hook-ran"
    hook = f"#!/bin/sh\ntouch {marker}\n"
    workspace.write_file(".git/hooks/post-commit", hook.encode())
    workspace.write_file(".git/hooks/pre-commit", hook.encode())
    config = f"[core]\n\thooksPath = .githooks\n\tfsmonitor = {marker}\n"
    workspace.write_file(".git/config", config.encode())
    workspace.write_file(".githooks/post-commit", hook.encode())
    assert sh(workspace, "chmod +x .git/hooks/* .githooks/*").ok
    workspace.write_file("app.py", b"print('changed')\n")
    change = workspace.changes()
    forge = LocalForge(tmp_path / "forge")
    forge.open_change(
        repo=escape_repo,
        base_commit=workspace.base_commit,
        branch="escape/hooks",
        change=change,
        message="escape",
        author_name="agent",
        author_email="agent@example.invalid",
    )
    escape.attempt(
        "install git hooks for the host to run",
        expected=".git never harvested, no hook runs",
        observed=f"change {list(change.paths)}; hook ran: {marker.exists()}",
        blocked=not marker.exists() and not any(p.startswith(".git/") for p in change.paths),
    )
