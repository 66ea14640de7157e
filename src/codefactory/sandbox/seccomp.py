"""The seccomp filter every sandboxed command runs under (`bwrap --seccomp FD`).

Everything is allowed except what a build or a test never needs: the mount API, tracing
and reading other processes, kernel modules and kexec, BPF and perf, the kernel keyring,
setting the clock, swap, reboot, and, above all, creating user namespaces (`unshare` and
`clone` with CLONE_NEWUSER), the one way an unprivileged uid in the host's user namespace
could gain capabilities again. A denied call fails with EPERM; `clone3` fails with ENOSYS,
because its flags sit behind a pointer the filter cannot read, and glibc then falls back
to `clone` (as Docker and Flatpak do). Syscalls of another ABI (i386 `int 0x80`, x32,
AArch32) are all denied: builds and tests run native binaries.

The program is classic BPF assembled here from the tables below rather than by libseccomp:
with an allow-by-default filter libseccomp refuses a rule whose action is the default one
and two comparisons of one argument in a rule, so it cannot say "personality: only these
five values" (Docker can, because its default is deny and it lists every allowed syscall,
which turns syscalls newer than libseccomp's table into EPERM instead of ENOSYS).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import struct
from dataclasses import dataclass

from codefactory.sandbox.errors import SandboxUnavailable

CLONE_NEWUSER = 0x10000000
ALLOWED_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
"""PER_LINUX, PER_LINUX32, UNAME26, both, and the query: Docker's default profile."""

# linux/audit.h; arch/x86/include/uapi/asm/unistd.h
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# linux/seccomp.h: actions, and the offsets in struct seccomp_data
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
_NR, _ARCH, _ARGS = 0, 4, 16

# linux/bpf_common.h: the five instructions the filter uses
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_Insn = tuple[int, int, int, int]


@dataclass(frozen=True)
class Deny:
    """Always refuse; `error` None means the filter's errno (EPERM)."""

    error: int | None = None


@dataclass(frozen=True)
class DenyFlags:
    """Refuse when argument `arg` has any of the bits `flags` (in its low 32 bits)."""

    flags: int
    arg: int = 0


@dataclass(frozen=True)
class AllowOnly:
    """Refuse unless argument `arg`, all 64 bits of it, is one of `values`."""

    values: tuple[int, ...]
    arg: int = 0


Rule = Deny | DenyFlags | AllowOnly

# The kernel's syscall numbers (a stable ABI); the tests check them against libseccomp's
# tables. None: the architecture has no such syscall.
#  name                  x86_64 aarch64 rule
_SYSCALLS: tuple[tuple[str, int | None, int | None, Rule], ...] = (
    # the mount API: new mounts, moving and detaching trees
    ("mount",               165,   40, Deny()),
    ("umount2",             166,   39, Deny()),
    ("pivot_root",          155,   41, Deny()),
    ("open_tree",           428,  428, Deny()),
    ("open_tree_attr",      467,  467, Deny()),
    ("move_mount",          429,  429, Deny()),
    ("fsopen",              430,  430, Deny()),
    ("fsconfig",            431,  431, Deny()),
    ("fsmount",             432,  432, Deny()),
    ("fspick",              433,  433, Deny()),
    ("mount_setattr",       442,  442, Deny()),
    # namespaces: joining one, and creating a user namespace
    ("setns",               308,  268, Deny()),
    ("unshare",             272,   97, DenyFlags(CLONE_NEWUSER)),
    ("clone",                56,  220, DenyFlags(CLONE_NEWUSER)),
    ("clone3",              435,  435, Deny(errno.ENOSYS)),
    # other processes' memory
    ("ptrace",              101,  117, Deny()),
    ("process_vm_readv",    310,  270, Deny()),
    ("process_vm_writev",   311,  271, Deny()),
    # the kernel itself: modules, kexec, BPF, perf, keyring, faults, log, I/O ports
    ("init_module",         175,  105, Deny()),
    ("finit_module",        313,  273, Deny()),
    ("delete_module",       176,  106, Deny()),
    ("kexec_load",          246,  104, Deny()),
    ("kexec_file_load",     320,  294, Deny()),
    ("bpf",                 321,  280, Deny()),
    ("perf_event_open",     298,  241, Deny()),
    ("keyctl",              250,  219, Deny()),
    ("add_key",             248,  217, Deny()),
    ("request_key",         249,  218, Deny()),
    ("userfaultfd",         323,  282, Deny()),
    # io_uring: a second syscall surface the filter cannot see into (Docker denies it too)
    ("io_uring_setup",      425,  425, Deny()),
    ("io_uring_enter",      426,  426, Deny()),
    ("io_uring_register",   427,  427, Deny()),
    ("syslog",              103,  116, Deny()),
    ("lookup_dcookie",      212,   18, Deny()),
    ("iopl",                172, None, Deny()),
    ("ioperm",              173, None, Deny()),
    ("personality",         135,   92, AllowOnly(ALLOWED_PERSONALITIES)),
    # the machine: reboot, swap, accounting, quotas, the clock (adjtimex stays: Docker
    # allows it, and without CAP_SYS_TIME it can only read), terminals, file handles
    ("reboot",              169,  142, Deny()),
    ("swapon",              167,  224, Deny()),
    ("swapoff",             168,  225, Deny()),
    ("acct",                163,   89, Deny()),
    ("quotactl",            179,   60, Deny()),
    ("quotactl_fd",         443,  443, Deny()),
    ("settimeofday",        164,  170, Deny()),
    ("clock_settime",       227,  112, Deny()),
    ("clock_adjtime",       305,  266, Deny()),
    ("vhangup",             153,   58, Deny()),
    ("open_by_handle_at",   304,  265, Deny()),
    ("name_to_handle_at",   303,  264, Deny()),
)  # fmt: skip

DENIED_SYSCALLS: tuple[str, ...] = tuple(
    name for name, _, _, rule in _SYSCALLS if isinstance(rule, Deny)
)
"""Always refused: EPERM, except `clone3` (ENOSYS)."""
RESTRICTED_SYSCALLS: tuple[str, ...] = tuple(
    name for name, _, _, rule in _SYSCALLS if not isinstance(rule, Deny)
)
"""Refused for some arguments: `clone`/`unshare` with CLONE_NEWUSER, `personality`."""
_RULES = {name: rule for name, _, _, rule in _SYSCALLS}


@dataclass(frozen=True)
class _Arch:
    audit_arch: int
    column: int
    """Where its numbers are in `_SYSCALLS`."""
    x32: bool = False
    """x32 calls share AUDIT_ARCH_X86_64 and are told apart by X32_SYSCALL_BIT."""


_ARCHES = {
    "x86_64": _Arch(AUDIT_ARCH_X86_64, column=1, x32=True),
    "aarch64": _Arch(AUDIT_ARCH_AARCH64, column=2),
}


def syscall_numbers(machine: str | None = None) -> dict[str, int]:
    """Name to number for the syscalls the filter names, on `machine` (default: this one)."""
    column = _arch(machine).column
    return {row[0]: nr for row in _SYSCALLS if isinstance(nr := row[column], int)}


def build_program(*, deny_errno: int = errno.EPERM, machine: str | None = None) -> bytes:
    """The filter as `struct sock_filter[]`, refusing with `deny_errno` (the tests use
    another value to tell the filter's refusal from the kernel's own EPERM)."""
    if not 0 < deny_errno <= 4095:
        raise ValueError(f"not an errno: {deny_errno}")
    arch = _arch(machine)
    deny = RET_ERRNO | deny_errno
    program = _prologue(arch, deny)
    for name, nr in syscall_numbers(machine).items():
        body = _body(_RULES[name], deny)
        program += [(_JEQ_K, 0, len(body), nr), *body]
    program.append((_RET_K, 0, 0, RET_ALLOW))
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


@functools.cache
def filter_program() -> bytes:
    """The compiled BPF program (cached after the first call)."""
    return build_program()


def seccomp_fd() -> int:
    """A fresh readable fd (a sealed memfd, close-on-exec) holding `filter_program()`, for
    `bwrap --seccomp FD`; the caller passes it to the child (pass_fds) and closes it after
    the child started."""
    program = filter_program()
    fd = os.memfd_create("codefactory-seccomp", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        if os.write(fd, program) != len(program):
            raise OSError(errno.EIO, "short write of the seccomp filter")
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _arch(machine: str | None) -> _Arch:
    machine = machine or os.uname().machine
    if machine not in _ARCHES:
        raise SandboxUnavailable(f"no seccomp filter for {machine}: only {', '.join(_ARCHES)}")
    return _ARCHES[machine]


def _prologue(arch: _Arch, deny: int) -> list[_Insn]:
    """Refuse every call of a foreign ABI, then leave the syscall number in A."""
    program = [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ_K, 1, 0, arch.audit_arch),
        (_RET_K, 0, 0, deny),
        (_LD_W_ABS, 0, 0, _NR),
    ]
    if arch.x32:
        # x32 numbers carry X32_SYSCALL_BIT; -1 (a tracer's "skip") goes on, as in libseccomp
        program += [
            (_JGE_K, 0, 2, X32_SYSCALL_BIT),
            (_JEQ_K, 1, 0, 0xFFFFFFFF),
            (_RET_K, 0, 0, deny),
        ]
    return program


def _body(rule: Rule, deny: int) -> list[_Insn]:
    """What runs once the syscall number matched; it always returns."""
    if isinstance(rule, Deny):
        return [(_RET_K, 0, 0, (RET_ERRNO | rule.error) if rule.error else deny)]
    if isinstance(rule, DenyFlags):
        return [
            (_LD_W_ABS, 0, 0, _low_word(rule.arg)),
            (_JSET_K, 0, 1, rule.flags),
            (_RET_K, 0, 0, deny),
            (_RET_K, 0, 0, RET_ALLOW),
        ]
    # AllowOnly: the high word must be 0 (every allowed value fits 32 bits), then a match
    # of the low word jumps to the final ALLOW; no match falls through to the refusal
    n = len(rule.values)
    if not all(0 <= value <= 0xFFFFFFFF for value in rule.values):
        raise ValueError(f"values must fit 32 bits: {rule.values}")
    return [
        (_LD_W_ABS, 0, 0, _low_word(rule.arg) + 4),
        (_JEQ_K, 0, n + 1, 0),
        (_LD_W_ABS, 0, 0, _low_word(rule.arg)),
        *((_JEQ_K, n - i, 0, value) for i, value in enumerate(rule.values)),
        (_RET_K, 0, 0, deny),
        (_RET_K, 0, 0, RET_ALLOW),
    ]


def _low_word(arg: int) -> int:
    """Offset of argument `arg`'s low 32 bits (x86_64 and aarch64 are little-endian)."""
    return _ARGS + 8 * arg
