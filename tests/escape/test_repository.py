"""Ways out through what the repository carries or what the engine leaves in the workspace:
symbolic links to host paths, git hooks and configuration for the factory to trip over."""

from __future__ import annotations

import shutil
from pathlib import Path

from codefactory.review.local_forge import LocalForge
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.mirror import Mirrors
from codefactory.sandbox.port import Phase
from codefactory.verify.worktree import working_changes, working_tree
from tests.conftest import make_repo
from tests.escape.conftest import Escape
from tests.integration.test_mirror import plant_traps

PRIVATE_KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"


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
        repository="acme/escape",
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
        repository="acme/escape",
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


def _trapped_repository(tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose git folder runs a marker-writing program from every hook, driver and
    monitor it can name, with `.gitattributes` sending every path through them."""
    repo = tmp_path / "trapped"
    make_repo(
        repo,
        {".gitattributes": "* filter=evil diff=evil\n", "app.py": "print('hi')\n"},
    )
    return repo, plant_traps(repo, tmp_path / "traps")


def test_provisioning_never_runs_the_repository_git_config(
    escape_sandbox: BubblewrapSandbox, escape: Escape, tmp_path: Path
) -> None:
    repo, marker = _trapped_repository(tmp_path)
    workspace = escape_sandbox.provision(repo=repo, commit="HEAD", run_id="esc-git-config")
    try:
        content = workspace.read_file("app.py")
    finally:
        workspace.destroy()
    ran = marker.read_text().split() if marker.exists() else []
    escape.attempt(
        "source .git/config filter + fsmonitor at provision",
        expected="nothing runs on the host",
        observed=f"ran: {ran or 'nothing'}; app.py {content!r}",
        blocked=not ran and content == b"print('hi')\n",
    )


def test_verify_never_runs_the_repository_git_config(escape: Escape, tmp_path: Path) -> None:
    repo, marker = _trapped_repository(tmp_path)
    (repo / "app.py").write_text("print('changed')\n")
    (repo / "new.py").write_text("print('new')\n")
    tree = working_tree(repo, "HEAD", mirrors=Mirrors(tmp_path / "mirrors"))
    ran = marker.read_text().split() if marker.exists() else []
    escape.attempt(
        "verify: diff.external, textconv, filter, fsmonitor",
        expected="nothing runs on the host",
        observed=f"ran: {ran or 'nothing'}; changed {[f.path for f in tree.files]}",
        blocked=not ran and [f.path for f in tree.files] == ["app.py", "new.py"],
    )


def test_verify_never_reads_through_a_folder_swapped_for_a_link(
    escape: Escape, tmp_path: Path
) -> None:
    keys = tmp_path / "factory-keys"
    keys.mkdir()
    (keys / "agent_ed25519").write_bytes(PRIVATE_KEY)
    repo = tmp_path / "linked"
    make_repo(repo, {"config/agent_ed25519": "placeholder\n", "app.py": "print('hi')\n"})
    shutil.rmtree(repo / "config")
    (repo / "config").symlink_to(keys, target_is_directory=True)
    base, files = working_changes(repo, "HEAD")
    leaked = [f.path for f in files if f.content and PRIVATE_KEY in f.content]
    escape.attempt(
        "verify: folder replaced by a link to the keys",
        expected="link not followed",
        observed=f"changes {[(f.path, f.content is None) for f in files]}; leaked {leaked}",
        blocked=not leaked
        and [(f.path, f.content) for f in files] == [("config/agent_ed25519", None)],
    )
