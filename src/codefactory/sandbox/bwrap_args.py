"""The command line of one sandboxed command: host-side prelude, bubblewrap, in-sandbox init.

sh -c PRELUDE             (host) join the command's cgroups, set the rlimits
  bwrap ...               new PID, IPC, UTS, network, mount and cgroup namespaces; a clean
                          environment; a read-only root with the workspace and a private
                          /tmp writable (nosuid, nodev); the seccomp filter
    setpriv ...           (as root) drop to the unprivileged host ids: no capabilities, an
                          empty bounding set, no_new_privs; (not root) bubblewrap's own new
                          user namespace maps uid 65534 to the factory's user instead
      [sh -c BRIDGE]      (only when egress is allowed) the bridge to the proxy
        COMMAND
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codefactory.sandbox.errors import StartFailed
from codefactory.sandbox.hostids import HostIds
from codefactory.sandbox.layout import (
    CACHE_DIR,
    EGRESS_SOCKET,
    ENV_DIR,
    NODE_MODULES,
    PROXY_PORT,
    SANDBOX_ROOT,
    SH,
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
    "/etc/hosts",
    "/etc/nsswitch.conf",
)
ACCOUNT_FILES = ("passwd", "group")
"""Written by the factory (`hostids.passwd_lines`), never the host's."""
BOUND_BY_DEFAULT = frozenset({"/usr", "/tmp", "/proc", "/dev"})
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
"""The only environment the host-side helpers see; the sandbox's is set by bubblewrap."""
START_FAILED = 125
SETPRIV = "/usr/bin/setpriv"

JOIN_CGROUPS = f"""n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit {START_FAILED}; shift; n=$((n - 1)); done
"""

_PORT_HEX = f"{PROXY_PORT:04X}"
BRIDGE = f"""/usr/bin/socat TCP-LISTEN:{PROXY_PORT},bind=127.0.0.1,reuseaddr,fork \\
  UNIX-CONNECT:{EGRESS_SOCKET} </dev/null >/dev/null 2>&1 &
i=0
until /usr/bin/grep -q ':{_PORT_HEX} 00000000:0000 0A' /proc/net/tcp; do
  i=$((i + 1))
  if [ $i -gt 1000 ]; then echo 'sandbox: the egress bridge did not start' >&2; exit 125; fi
  /usr/bin/sleep 0.002
done
"""
"""Every program by absolute path: `/env/bin` comes first on the sandbox's PATH."""


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
    host_ids: HostIds | None = None
    """As root: the unprivileged host ids the command drops to (`hostids.py`)."""
    etc_dir: Path | None = None
    """The factory's `passwd` and `group` for the sandbox."""
    seccomp_fd: int | None = None
    """A readable fd holding the compiled seccomp filter (`seccomp.py`)."""
    binds: Sequence[tuple[str, str]] = ()
    """(sandbox path, host folder) pairs bound read-only, checked by `binds.read_only_binds`."""


def command_argv(spec: CommandSpec, command: Sequence[str]) -> list[str]:
    """The full argv, run by the host with `HOST_ENV`. The rlimits are set by the host-side
    prelude and inherited through bubblewrap; the in-sandbox init runs only for egress."""
    rlimits = ulimit_script(spec.limits, address_space=spec.address_space_rlimit)
    inner = [SH, "-c", BRIDGE + 'exec "$@"', "sh"] if spec.egress_socket else []
    drop = drop_privileges(spec.host_ids) if spec.host_ids else []
    bwrap = [spec.bwrap, *bwrap_options(spec), "--", *drop, *inner, *command]
    procs = [str(len(spec.cgroup_procs)), *spec.cgroup_procs]
    prelude = JOIN_CGROUPS + rlimits + '\nexec "$@"\n'
    return ["sh", "-c", prelude, "sh", *procs, *bwrap]


def drop_privileges(ids: HostIds) -> list[str]:
    """`setpriv` to the unprivileged host ids, keeping nothing (util-linux). By absolute path:
    bubblewrap looks a bare name up on the sandbox's PATH, where `/env/bin` (which the setup
    phase writes) comes first, and this program still holds CAP_SETUID."""
    return [
        SETPRIV, f"--reuid={ids.uid}", f"--regid={ids.gid}", "--clear-groups",
        "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
    ]  # fmt: skip


def identity_options(ids: HostIds | None) -> list[str]:
    """As root: stay in the host's user namespace with only what `setpriv` needs to drop to
    `ids`; else bubblewrap's own user namespace, uid 65534 mapped to the factory's user."""
    if ids is None:
        return ["--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns",
                "--cap-drop", "ALL"]  # fmt: skip
    keep = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
    return ["--cap-drop", "ALL", *[arg for cap in keep for arg in ("--cap-add", cap)]]


def bwrap_options(spec: CommandSpec) -> list[str]:
    """Namespaces, mounts and environment of the sandbox itself."""
    options = [
        *identity_options(spec.host_ids),
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
        "--unshare-cgroup-try",
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
        "--perms", "01777", "--size", str(spec.tmp_bytes), "--tmpfs", "/tmp",
        # POSIX semaphores (multiprocessing locks) live here; the unprivileged user needs it
        "--perms", "01777", "--size", str(spec.tmp_bytes), "--tmpfs", "/dev/shm",
        "--bind", str(spec.workspace_dir), SANDBOX_ROOT,
        "--chdir", SANDBOX_ROOT,
    ]  # fmt: skip
    for name, value in spec.sandbox_env.items():
        options += ["--setenv", name, value]
    options += open_parents("/etc")
    for path in BASE_ETC:
        options += ["--ro-bind-try", path, path]
    if spec.etc_dir is not None:
        for name in ACCOUNT_FILES:
            options += ["--ro-bind", str(spec.etc_dir / name), f"/etc/{name}"]
    options += open_parents(TOOLS_DIR)
    for name, binary in sandbox_tools().items():
        options += ["--ro-bind", str(binary), f"{TOOLS_DIR}/{name}"]
    if spec.python.parent != Path("/usr/bin"):
        prefix = str(spec.python.resolve().parent.parent)
        options += [*open_parents(prefix), "--ro-bind", prefix, prefix]
    writable_env = spec.phase is Phase.SETUP
    options += ["--bind" if writable_env else "--ro-bind", str(spec.env_dir), ENV_DIR]
    if spec.phase is Phase.SETUP:
        options += ["--bind", str(spec.cache_dir), CACHE_DIR]
    if spec.egress_socket is not None:
        options += open_parents(EGRESS_SOCKET.rsplit("/", 1)[0])
        options += ["--ro-bind", str(spec.egress_socket), EGRESS_SOCKET]
        for path in TLS_ETC:
            options += ["--ro-bind-try", path, path]
    for target, source in spec.binds:  # bubblewrap binds nosuid and nodev
        options += [*open_parents(target), "--ro-bind", source, target]
    options += node_modules_options(spec)
    if spec.status_fd is not None:
        options += ["--json-status-fd", str(spec.status_fd)]
    if spec.seccomp_fd is not None:
        options += ["--seccomp", str(spec.seccomp_fd)]
    # last: the sandbox's own root (where /etc and /run were made) becomes read-only too
    return [*options, "--remount-ro", "/"]


WORKSPACE_NODE_MODULES = f"{SANDBOX_ROOT}/node_modules"
"""Where a JavaScript project's installed packages (`NODE_MODULES`) show in the engine and
check phases: where Node, npm and their tools look for them, and read-only."""


def node_modules_options(spec: CommandSpec) -> list[str]:
    """In the engine and check phases, `NODE_MODULES` bound read-only at
    `WORKSPACE_NODE_MODULES`, when the setup phase made it: nothing run there can change the
    installed packages. `StartFailed` when the workspace holds a file or a symbolic link
    there (bubblewrap would follow a link at a bind's target).

    Both ends are checked without following links, and neither can turn into a link before
    bubblewrap binds: the environment changes only in SETUP, which never runs beside another
    phase, and every engine or check command running meanwhile holds the same bind, so the
    folder is a mount point that it can neither move nor remove (no command runs without the
    bind while there are packages). The bind comes after every other mount, so no later
    mount can stand over it."""
    if spec.phase is Phase.SETUP:
        return []
    source = spec.env_dir / NODE_MODULES.removeprefix(f"{ENV_DIR}/")
    target = spec.workspace_dir / WORKSPACE_NODE_MODULES.removeprefix(f"{SANDBOX_ROOT}/")
    if _kind(source) != "folder":
        return []
    if _kind(target) not in ("folder", "missing"):
        raise StartFailed(
            f"the workspace's `node_modules` is a {_kind(target)}, where the sandbox shows the "
            "installed JavaScript packages; remove it from the repository"
        )
    return ["--ro-bind", str(source), WORKSPACE_NODE_MODULES]


def _kind(path: Path) -> str:
    """`folder`, `missing`, `link` or `file` (anything else), without following a link."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    if stat.S_ISLNK(mode):
        return "link"
    return "folder" if stat.S_ISDIR(mode) else "file"


def open_parents(path: str) -> list[str]:
    """Folders on the way to `path` made 0755 inside the sandbox (bubblewrap run by root makes
    them 0700, which the unprivileged command could not cross)."""
    parts = [p for p in path.split("/") if p]
    options: list[str] = []
    for depth in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:depth])
        if folder not in BOUND_BY_DEFAULT:
            options += ["--perms", "0755", "--dir", folder]
    return options
