"""The command line of one sandboxed command: host-side prelude, bubblewrap, in-sandbox init.

sh -c PRELUDE             (host) join the command's cgroups, set the rlimits
  bwrap ...               new user (65534, no capabilities, no nested user namespaces),
                          PID, IPC, UTS, network and cgroup namespaces; a clean environment;
                          a read-only root with the workspace and a private /tmp writable
    [sh -c BRIDGE]        (sandbox, only when egress is allowed) the bridge to the proxy
      COMMAND
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codefactory.sandbox.layout import (
    CACHE_DIR,
    EGRESS_SOCKET,
    ENV_DIR,
    PROXY_PORT,
    SANDBOX_ROOT,
    TOOLS_DIR,
)
from codefactory.sandbox.limits import Limits, ulimit_script
from codefactory.sandbox.port import Phase
from codefactory.sandbox.tools import sandbox_tools

# Files a networked phase needs for TLS; never the whole of /etc (shadow, keys). No
# resolv.conf: names are resolved by the egress proxy, outside.
TLS_ETC = ("/etc/ssl", "/etc/ca-certificates")
BASE_ETC = (
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/nsswitch.conf",
)
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
"""The only environment the host-side helpers see; the sandbox's is set by bubblewrap."""
START_FAILED = 125

JOIN_CGROUPS = f"""n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit {START_FAILED}; shift; n=$((n - 1)); done
"""

_PORT_HEX = f"{PROXY_PORT:04X}"
BRIDGE = f"""socat TCP-LISTEN:{PROXY_PORT},bind=127.0.0.1,reuseaddr,fork \\
  UNIX-CONNECT:{EGRESS_SOCKET} </dev/null >/dev/null 2>&1 &
i=0
until grep -q ':{_PORT_HEX} 00000000:0000 0A' /proc/net/tcp; do
  i=$((i + 1))
  if [ $i -gt 1000 ]; then echo 'sandbox: the egress bridge did not start' >&2; exit 125; fi
  sleep 0.002
done
"""


@dataclass(frozen=True, kw_only=True)
class CommandSpec:
    """Everything that shapes one sandboxed command's command line."""

    bwrap: str
    phase: Phase
    workspace_dir: Path
    """The workspace as the host sees it: the overlay's mount point, or the copy."""
    env_dir: Path
    python: Path
    cache_dir: Path
    tmp_bytes: int
    limits: Limits
    address_space_rlimit: bool
    sandbox_env: Mapping[str, str]
    cgroup_procs: Sequence[str] = ()
    status_fd: int | None = None
    egress_socket: Path | None = None


def command_argv(spec: CommandSpec, command: Sequence[str]) -> list[str]:
    """The full argv, run by the host with `HOST_ENV`. The rlimits are set by the host-side
    prelude and inherited through bubblewrap; the in-sandbox init runs only for egress."""
    rlimits = ulimit_script(spec.limits, address_space=spec.address_space_rlimit)
    inner = ["sh", "-c", BRIDGE + 'exec "$@"', "sh"] if spec.egress_socket else []
    bwrap = [spec.bwrap, *bwrap_options(spec), "--", *inner, *command]
    procs = [str(len(spec.cgroup_procs)), *spec.cgroup_procs]
    prelude = JOIN_CGROUPS + rlimits + '\nexec "$@"\n'
    return ["sh", "-c", prelude, "sh", *procs, *bwrap]


def bwrap_options(spec: CommandSpec) -> list[str]:
    """Namespaces, mounts and environment of the sandbox itself."""
    options = [
        "--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
        "--unshare-cgroup-try",
        "--cap-drop", "ALL",
        "--die-with-parent", "--new-session",
        "--hostname", "sandbox",
        "--clearenv",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin",
        "--symlink", "usr/sbin", "/sbin",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(spec.tmp_bytes), "--tmpfs", "/tmp",
        "--bind", str(spec.workspace_dir), SANDBOX_ROOT,
        "--chdir", SANDBOX_ROOT,
    ]  # fmt: skip
    for name, value in spec.sandbox_env.items():
        options += ["--setenv", name, value]
    for path in BASE_ETC:
        options += ["--ro-bind-try", path, path]
    for name, binary in sandbox_tools().items():
        options += ["--ro-bind", str(binary), f"{TOOLS_DIR}/{name}"]
    if spec.python.parent != Path("/usr/bin"):
        prefix = str(spec.python.resolve().parent.parent)
        options += ["--ro-bind", prefix, prefix]
    writable_env = spec.phase is Phase.SETUP
    options += ["--bind" if writable_env else "--ro-bind", str(spec.env_dir), ENV_DIR]
    if spec.phase is Phase.SETUP:
        spec.cache_dir.mkdir(parents=True, exist_ok=True)
        options += ["--bind", str(spec.cache_dir), CACHE_DIR]
    if spec.egress_socket is not None:
        options += ["--ro-bind", str(spec.egress_socket), EGRESS_SOCKET]
        for path in TLS_ETC:
            options += ["--ro-bind-try", path, path]
    if spec.status_fd is not None:
        options += ["--json-status-fd", str(spec.status_fd)]
    # last: the sandbox's own root (where /etc and /run were made) becomes read-only too
    return [*options, "--remount-ro", "/"]
