"""The seccomp filter, loaded by a real bubblewrap into a real command.

Each denied syscall is called from inside the sandbox (Debian's python3 and ctypes) as the
unprivileged uid 65534 without capabilities. Without capabilities the kernel itself answers
EPERM to many of them (mount, reboot), so each is also run under the same filter built to
answer ENOTRECOVERABLE: that errno can only come from the filter. Syscall numbers come from
libseccomp's tables, which the filter's own table is checked against.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from codefactory.sandbox import seccomp
from codefactory.sandbox.errors import SandboxUnavailable

BWRAP = Path("/usr/bin/bwrap")
PYTHON = Path("/usr/bin/python3")  # Debian's, inside the sandbox; not the venv's
MARKER = errno.ENOTRECOVERABLE
"""No kernel path of these syscalls answers this: seen, it comes from the filter."""
MACHINE = platform.machine()

pytestmark = pytest.mark.skipif(
    not (BWRAP.exists() and PYTHON.exists()), reason="needs /usr/bin/bwrap and /usr/bin/python3"
)

SANDBOX = [
    str(BWRAP),
    "--ro-bind", "/usr", "/usr",
    "--symlink", "usr/lib", "/lib",
    "--symlink", "usr/lib64", "/lib64",
    "--symlink", "usr/bin", "/bin",
    "--proc", "/proc",
    "--dev", "/dev",
    "--tmpfs", "/tmp",
    "--tmpfs", "/dev/shm",
    "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
    "--unshare-user", "--uid", "65534", "--gid", "65534",
    "--die-with-parent", "--new-session", "--cap-drop", "ALL",
    "--setenv", "PATH", "/usr/bin",
]  # fmt: skip

# Arguments that do no harm even if the filter let the call through (the caller has no
# capabilities): null pointers, fd -1, pid 0, unknown commands.
HARMLESS_ARGS: dict[str, tuple[int, ...]] = {
    "mount": (0, 0, 0, 0, 0),
    "umount2": (0, 0),
    "pivot_root": (0, 0),
    "open_tree": (-1, 0, 0),
    "open_tree_attr": (-1, 0, 0, 0, 0),
    "move_mount": (-1, 0, -1, 0, 0),
    "fsopen": (0, 0),
    "fsconfig": (-1, 0, 0, 0, 0),
    "fsmount": (-1, 0, 0),
    "fspick": (-1, 0, 0),
    "mount_setattr": (-1, 0, 0, 0, 0),
    "setns": (-1, 0),
    "clone3": (0, 0),  # size 0: EINVAL from the kernel
    "ptrace": (16, 0, 0, 0),  # PTRACE_ATTACH to pid 0
    "process_vm_readv": (0, 0, 0, 0, 0, 0),
    "process_vm_writev": (0, 0, 0, 0, 0, 0),
    "init_module": (0, 0, 0),
    "finit_module": (-1, 0, 0),
    "delete_module": (0, 0),
    "kexec_load": (0, 0, 0, 0),
    "kexec_file_load": (-1, -1, 0, 0, 0),
    "bpf": (1000, 0, 0),
    "perf_event_open": (0, 0, -1, -1, 0),
    "keyctl": (0xFFFF, 0, 0, 0, 0),
    "add_key": (0, 0, 0, 0, 0),
    "request_key": (0, 0, 0, 0),
    "userfaultfd": (0,),
    "io_uring_setup": (0, 0),
    "io_uring_enter": (-1, 0, 0, 0, 0, 0),
    "io_uring_register": (-1, 0, 0, 0),
    "syslog": (10, 0, 0),  # SYSLOG_ACTION_SIZE_BUFFER
    "lookup_dcookie": (0, 0, 0),
    "iopl": (0,),
    "ioperm": (0, 0, 0),
    "reboot": (0, 0, 0, 0),  # no magic numbers
    "swapon": (0, 0),
    "swapoff": (0,),
    "acct": (0,),
    "quotactl": (0, 0, 0, 0),
    "quotactl_fd": (-1, 0, 0, 0),
    "settimeofday": (0, 0),  # both null: a no-op
    "clock_settime": (0, 0),
    "clock_adjtime": (0, 0),
    "vhangup": (),
    "open_by_handle_at": (-1, 0, 0),
    "name_to_handle_at": (-1, 0, 0, 0, 0),
}

# Newer than libseccomp 2.5.4's tables: hard-coded from the kernel's syscall tables
# (Linux 6.15; the same number on x86_64 and aarch64).
NEWER_THAN_LIBSECCOMP = {"open_tree_attr": 467}

# Runs inside the sandbox: calls each [nr, *args] of argv[1] and prints the errnos (0: ok).
PROBE = """
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
out = []
for nr, *args in json.loads(sys.argv[1]):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    out.append(ctypes.get_errno() if r == -1 else 0)
print(json.dumps(out))
"""

# Runs inside the sandbox on x86_64: getpid through another ABI, from machine code in an
# executable page; prints what the kernel (or the filter) returned in rax.
FOREIGN_ABI = """
import ctypes, mmap, sys
code = {
    # mov eax, 20 (i386 getpid); int 0x80; movsxd rax, eax; ret
    "i386": bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0x48, 0x63, 0xC0, 0xC3]),
    # mov eax, 0x40000000 | 39 (x32 getpid); syscall; ret
    "x32": bytes([0xB8, 39, 0, 0, 0x40, 0x0F, 0x05, 0xC3]),
}[sys.argv[1]]
page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(code)
call = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
import os
print(call(), os.getpid())
"""


def libseccomp_numbers(names: Sequence[str], arch: int = 0) -> dict[str, int | None]:
    """Numbers of `names` on `arch` (an AUDIT_ARCH_* value, 0: native) from libseccomp."""
    path = ctypes.util.find_library("seccomp")
    if path is None:
        pytest.skip("needs libseccomp (Debian: libseccomp2) to look syscall numbers up")
    resolve = ctypes.CDLL(path).seccomp_syscall_resolve_name_arch
    resolve.argtypes = (ctypes.c_uint32, ctypes.c_char_p)
    resolve.restype = ctypes.c_int
    # negative: unknown to libseccomp (-1), or a pseudo-number for a syscall the arch lacks
    found = {name: resolve(arch, name.encode()) for name in names}
    return {name: nr if nr >= 0 else NEWER_THAN_LIBSECCOMP.get(name) for name, nr in found.items()}


@contextmanager
def program_fd(program: bytes | None) -> Iterator[int | None]:
    """`seccomp.seccomp_fd()` for the shipped program, a plain memfd for another, or None."""
    if program is None:
        yield None
        return
    if program == seccomp.filter_program():
        fd = seccomp.seccomp_fd()
    else:
        fd = os.memfd_create("test-seccomp")
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
    try:
        yield fd
    finally:
        os.close(fd)


def sandboxed(
    argv: Sequence[str], program: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `argv` in a minimal bubblewrap sandbox, under `program` if given."""
    with program_fd(program) as fd:
        options = ["--seccomp", str(fd)] if fd is not None else []
        return subprocess.run(
            [*SANDBOX, *options, "--", *argv],
            pass_fds=(fd,) if fd is not None else (),
            capture_output=True,
            text=True,
            timeout=120,
        )


def probe(calls: Sequence[Sequence[int]], program: bytes | None) -> list[int]:
    """The errno of each [nr, *args] in `calls`, called inside the sandbox."""
    done = sandboxed([str(PYTHON), "-c", PROBE, json.dumps(calls)], program)
    assert done.returncode == 0, done.stderr
    result: list[int] = json.loads(done.stdout)
    return result


def shipped() -> bytes:
    return seccomp.filter_program()


def marked() -> bytes:
    return seccomp.build_program(deny_errno=MARKER)


def number(name: str) -> int:
    nr = libseccomp_numbers([name])[name]
    if nr is None:
        pytest.skip(f"{name} does not exist on {MACHINE}")
    return nr


# -- each denied syscall, one by one --------------------------------------------------------


def test_every_denied_syscall_has_a_probe() -> None:
    assert sorted(HARMLESS_ARGS) == sorted(seccomp.DENIED_SYSCALLS)


@pytest.mark.parametrize("name", seccomp.DENIED_SYSCALLS)
def test_a_denied_syscall_is_refused_by_the_filter(name: str) -> None:
    call = [number(name), *HARMLESS_ARGS[name]]
    expected = errno.ENOSYS if name == "clone3" else errno.EPERM
    assert probe([call], shipped()) == [expected]
    if name == "clone3":  # its own errno in either program: the kernel's answer differs
        assert probe([call], None) != [errno.ENOSYS]
    else:
        assert probe([call], marked()) == [MARKER]


# -- user namespaces ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "refusal"), [(shipped, errno.EPERM), (marked, MARKER)], ids=["shipped", "marked"]
)
def test_creating_a_user_namespace_is_refused(program: Callable[[], bytes], refusal: int) -> None:
    clone_newuser = seccomp.CLONE_NEWUSER | 0x200  # with CLONE_FS: EINVAL from the kernel
    calls = [
        [number("unshare"), seccomp.CLONE_NEWUSER],
        [number("unshare"), seccomp.CLONE_NEWUSER | 0x20000],  # with CLONE_NEWNS
        [number("clone"), clone_newuser, 0, 0, 0, 0],
    ]
    assert probe(calls, program()) == [refusal] * 3


def test_without_the_filter_the_same_calls_reach_the_kernel() -> None:
    """The control: unshare succeeds (the sandbox allows nesting), clone says EINVAL."""
    calls = [
        [number("unshare"), seccomp.CLONE_NEWUSER],
        [number("clone"), seccomp.CLONE_NEWUSER | 0x200, 0, 0, 0, 0],
    ]
    assert probe(calls, None) == [0, errno.EINVAL]


def test_unshare_u_fails() -> None:
    done = sandboxed(["unshare", "-U", "true"], shipped())
    assert done.returncode != 0
    assert "Operation not permitted" in done.stderr
    assert sandboxed(["unshare", "-U", "true"]).returncode == 0


def test_other_namespaces_and_clone_flags_stay_usable() -> None:
    """Only CLONE_NEWUSER is refused by the filter; CLONE_NEWNS without capabilities is
    still the kernel's EPERM, and a plain unshare(0) succeeds."""
    calls = [[number("unshare"), 0], [number("unshare"), 0x20000]]
    assert probe(calls, marked()) == [0, errno.EPERM]


# -- personality ------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", seccomp.ALLOWED_PERSONALITIES, ids=hex)
def test_an_allowed_personality_is_allowed(persona: int) -> None:
    assert probe([[number("personality"), persona]], marked()) == [0]


@pytest.mark.parametrize(
    "persona",
    [0x0040000, 0x0400000, 0x0040008, 0x1, 0xFFFFFFFE, 0x1_0000_0000, 0x1_0000_0008],
    ids=["ADDR_NO_RANDOMIZE", "READ_IMPLIES_EXEC", "LINUX32|NO_RANDOMIZE", "1", "0xfffffffe",
         "high word only", "high word and LINUX32"],
)  # fmt: skip
def test_any_other_personality_is_refused(persona: int) -> None:
    assert probe([[number("personality"), persona]], shipped()) == [errno.EPERM]
    assert probe([[number("personality"), persona]], marked()) == [MARKER]


@pytest.mark.skipif(shutil.which("setarch") is None, reason="needs util-linux's setarch")
def test_setarch_may_not_turn_off_address_randomisation() -> None:
    denied = sandboxed(["setarch", MACHINE, "-R", "true"], shipped())
    assert denied.returncode != 0
    assert "Operation not permitted" in denied.stderr
    assert sandboxed(["setarch", MACHINE, "true"], shipped()).returncode == 0


# -- foreign ABIs -----------------------------------------------------------------------------


@pytest.mark.skipif(MACHINE != "x86_64", reason="the i386 and x32 ABIs are x86_64's")
@pytest.mark.parametrize("abi", ["i386", "x32"])
def test_a_syscall_through_another_abi_is_refused(abi: str) -> None:
    """getpid through `int 0x80` or with the x32 bit is refused, not run: builds and tests
    run native binaries. The control shows what the kernel answers without the filter."""
    control = sandboxed([str(PYTHON), "-c", FOREIGN_ABI, abi])
    if control.returncode != 0:
        pytest.skip(f"the kernel runs no {abi} calls here: {control.stderr.strip()[-200:]}")
    answer, pid = map(int, control.stdout.split())
    assert answer in (pid, -errno.ENOSYS)  # x32 is often compiled out: ENOSYS
    filtered = sandboxed([str(PYTHON), "-c", FOREIGN_ABI, abi], shipped())
    assert filtered.returncode == 0, filtered.stderr
    assert int(filtered.stdout.split()[0]) == -errno.EPERM


# -- what builds and tests do still works -----------------------------------------------------

WORKLOAD = """
import json, multiprocessing, os, sqlite3, ssl, subprocess, threading

def square(n):
    return n * n

if __name__ == "__main__":
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
    seen = []
    threads = [threading.Thread(target=seen.append, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(seen) == [0, 1, 2, 3]
    assert subprocess.run(["true"]).returncode == 0
    with multiprocessing.Pool(2) as pool:
        assert pool.map(square, range(10)) == [n * n for n in range(10)]
    db = sqlite3.connect(":memory:")
    db.execute("create table t (x)")
    db.executemany("insert into t values (?)", [(1,), (2,)])
    assert db.execute("select sum(x) from t").fetchone() == (3,)
    ssl.create_default_context()
    print(json.dumps({"ok": True}))
"""


def test_fork_threads_subprocesses_and_a_pool_still_work() -> None:
    done = sandboxed([str(PYTHON), "-c", WORKLOAD], shipped())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True}


def test_shell_pipelines_still_work() -> None:
    script = "seq 1 1000 | sort -rn | head -3 | tr '\\n' ' '; (echo sub) | cat; wait"
    done = sandboxed(["sh", "-c", script], shipped())
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1000 999 998 sub\n"


def test_the_command_runs_under_one_filter() -> None:
    done = sandboxed(["grep", "^Seccomp", "/proc/self/status"], shipped())
    assert done.stdout.split() == ["Seccomp:", "2", "Seccomp_filters:", "1"]


# -- the program and the fd -------------------------------------------------------------------


def test_the_syscall_numbers_are_the_kernels() -> None:
    """The filter's table against libseccomp's, on every architecture the filter knows."""
    arches = {"x86_64": seccomp.AUDIT_ARCH_X86_64, "aarch64": seccomp.AUDIT_ARCH_AARCH64}
    names = [*seccomp.DENIED_SYSCALLS, *seccomp.RESTRICTED_SYSCALLS]
    for machine, audit_arch in arches.items():
        expected = {n: nr for n, nr in libseccomp_numbers(names, audit_arch).items() if nr}
        assert seccomp.syscall_numbers(machine) == expected, machine


def test_the_program_is_built_once_and_refuses_with_eperm() -> None:
    assert seccomp.filter_program() is seccomp.filter_program()
    assert seccomp.filter_program() == seccomp.build_program(deny_errno=errno.EPERM)
    assert len(seccomp.filter_program()) % 8 == 0  # struct sock_filter


def test_the_fd_holds_the_program_sealed_and_close_on_exec() -> None:
    fd, other = seccomp.seccomp_fd(), seccomp.seccomp_fd()
    try:
        assert fd != other  # a fresh one each call, each read from its start
        assert not os.get_inheritable(fd)
        assert os.read(fd, 1 << 16) == os.read(other, 1 << 16) == seccomp.filter_program()
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_WRITE
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"\0" * 8, 0)
    finally:
        os.close(fd)
        os.close(other)


def test_another_architecture_is_unavailable() -> None:
    with pytest.raises(SandboxUnavailable, match="riscv64"):
        seccomp.build_program(machine="riscv64")
