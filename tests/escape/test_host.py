"""Ways into the host: its files, its environment, its processes, its privileges."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.port import Phase
from tests.escape.conftest import Escape


def sh(ws: BubblewrapWorkspace, script: str, phase: Phase = Phase.ENGINE):
    return ws.exec(["sh", "-c", script], phase=phase, timeout_s=20)


def last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1][:70]


@pytest.mark.parametrize(
    ("path", "name"),
    [("/root", "read the host's /root"), ("/etc/shadow", "read /etc/shadow")],
)
def test_host_files(workspace: BubblewrapWorkspace, escape: Escape, path: str, name: str) -> None:
    result = sh(workspace, f"ls -la {path} && cat {path}")
    escape.attempt(
        name,
        expected="not there",
        observed=last_line(result.stderr),
        blocked=result.exit_code != 0 and "No such file" in result.stderr,
    )


def test_the_factorys_data_folder_and_keys(
    workspace: BubblewrapWorkspace, escape: Escape, escape_sandbox: BubblewrapSandbox
) -> None:
    data = escape_sandbox.work_root.parent
    keys = data / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "agent.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    result = sh(workspace, f"cat {keys}/agent.key; ls {data}; ls {workspace.home.path}")
    escape.attempt(
        "read the factory's data folder and keys",
        expected="not there",
        observed=last_line(result.stderr),
        blocked="PRIVATE KEY" not in result.stdout and result.stdout.strip() == "",
    )


def test_the_parents_environment(
    workspace: BubblewrapWorkspace, escape: Escape, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEFACTORY_ESCAPE_SECRET", "s3cr3t-token")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/ssh-agent.sock")
    result = sh(workspace, "env; cat /proc/self/environ | tr '\\0' '\\n'")
    leaked = [
        word
        for word in ("s3cr3t", "SSH_AUTH_SOCK", "/root", "CODEFACTORY")
        if word in result.stdout
    ]
    escape.attempt(
        "read the parent's environment variables",
        expected="clean environment",
        observed=f"leaked: {leaked}" if leaked else "HOME=/tmp, no host variable",
        blocked=not leaked and "HOME=/tmp" in result.stdout,
    )


def test_proc_1_environ(
    workspace: BubblewrapWorkspace, escape: Escape, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEFACTORY_ESCAPE_SECRET", "s3cr3t-token")
    result = sh(workspace, f"cat /proc/1/environ; cat /proc/{os.getpid()}/environ")
    escape.attempt(
        "read /proc/1/environ and the factory's",
        expected="only the sandbox's own init",
        observed=last_line(result.stderr) or "no secret",
        blocked="s3cr3t" not in result.stdout and "No such file" in result.stderr,
    )


@pytest.mark.parametrize("target", ["/usr/escape", "/etc/escape", "/escape", "/env/escape"])
def test_writing_outside_the_workspace(
    workspace: BubblewrapWorkspace, escape: Escape, target: str
) -> None:
    result = sh(workspace, f"echo x > {target}")
    escape.attempt(
        f"write {target}",
        expected="read-only",
        observed=last_line(result.stderr),
        blocked=result.exit_code != 0 and not Path(target).exists(),
    )


def test_tmp_is_private(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = sh(workspace, "echo x > /tmp/codefactory-escape && ls /tmp")
    escape.attempt(
        "write the host's /tmp",
        expected="private tmpfs",
        observed="written inside only" if result.ok else last_line(result.stderr),
        blocked=not Path("/tmp/codefactory-escape").exists(),
    )


def test_mount(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = sh(workspace, "mount -t tmpfs none /tmp || mount --bind / /workspace")
    escape.attempt(
        "mount a file system",
        expected="permission denied",
        observed=(result.stderr.strip().splitlines() or [""])[0][:70],
        blocked=result.exit_code != 0,
    )


def test_a_nested_user_namespace(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = sh(
        workspace,
        "unshare --user --map-root-user id -u || "
        "unshare --user --map-root-user --mount sh -c 'mount -t tmpfs x /tmp'",
    )
    escape.attempt(
        "regain root in a nested user namespace",
        expected="no user namespaces",
        observed=last_line(result.stderr),
        blocked=result.exit_code != 0,
    )


def test_chroot(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = workspace.exec(["python3", "-c", "import os; os.chroot('/tmp')"], phase=Phase.ENGINE)
    escape.attempt(
        "chroot",
        expected="operation not permitted",
        observed=last_line(result.stderr),
        blocked=result.exit_code != 0 and "PermissionError" in result.stderr,
    )


def test_ptrace_a_host_process(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    code = (
        "import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); "
        "r = libc.ptrace(16, int(sys.argv[1]), 0, 0); "
        "print(r, os.strerror(ctypes.get_errno()))"
    )
    result = workspace.exec(["python3", "-c", code, str(os.getpid())], phase=Phase.ENGINE)
    escape.attempt(
        "ptrace a host process (the factory)",
        expected="no such process",
        observed=result.stdout.strip(),
        blocked=result.stdout.startswith("-1"),
    )


def test_signal_a_host_process(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    victim = subprocess.Popen(["sleep", "60"])
    try:
        result = sh(workspace, f"kill -9 {victim.pid}")
        alive = victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
    escape.attempt(
        "send SIGKILL to a host process",
        expected="no such process",
        observed=last_line(result.stderr),
        blocked=alive and result.exit_code != 0,
    )


def test_privileges(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    status = sh(workspace, "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status").stdout
    fields = dict(line.split(":\t") for line in status.strip().splitlines())
    escape.attempt(
        "hold a capability or gain one (setuid)",
        expected="none, no_new_privs",
        observed=", ".join(f"{k}={v.strip()}" for k, v in fields.items()),
        blocked=fields.get("CapEff", "").strip() == "0000000000000000"
        and fields.get("CapBnd", "").strip() == "0000000000000000"
        and fields.get("NoNewPrivs", "").strip() == "1",
    )


def test_devices_and_sysfs(workspace: BubblewrapWorkspace, escape: Escape) -> None:
    result = sh(workspace, "ls /dev; ls /sys 2>&1; ls /dev/vda /dev/sda /dev/mem 2>&1")
    exposed = [d for d in ("vda", "sda", "mem ", "kmsg") if f"\n{d}" in result.stdout]
    escape.attempt(
        "reach host devices or /sys",
        expected="minimal /dev, no /sys",
        observed=f"exposed: {exposed}" if exposed else "null, zero, random, tty…; no /sys",
        blocked=not exposed and "No such file" in result.stdout,
    )
