"""Make a folder the sandbox wrote safe to reuse: no setuid or setgid bit, no special file.

An image environment or a package cache is written by a sandboxed command and then lent to
the next one (and read by the factory). A setuid or setgid bit left there, or a device node,
FIFO or socket, is a door for whoever comes next; `normalise` closes them before reuse. It
never follows a symbolic link: every entry is reached through its folder's descriptor and
opened with `O_NOFOLLOW`, so a link swapped in meanwhile redirects nothing.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

_PRIVILEGE_BITS = stat.S_ISUID | stat.S_ISGID
_SPECIAL = (stat.S_ISCHR, stat.S_ISBLK, stat.S_ISFIFO, stat.S_ISSOCK)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def normalise(root: Path) -> list[str]:
    """Clear setuid/setgid bits below `root` (itself included) and delete device nodes, FIFOs
    and sockets; returns the relative paths changed or removed, sorted, for the audit record."""
    try:
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    changed: list[str] = []
    try:
        if _clear_bits(top, os.fstat(top)):
            changed.append(".")
        _normalise_below(top, "", changed)
    finally:
        os.close(top)
    return sorted(changed)


def _normalise_below(top: int, prefix: str, changed: list[str]) -> None:
    """Walk with an explicit stack of folder descriptors: deep trees do not recurse."""
    stack = [(top, prefix, False)]
    while stack:
        folder, here, owned = stack.pop()
        try:
            with os.scandir(folder) as entries:
                names = [entry.name for entry in entries]
            for name in names:
                child = _visit(folder, name, f"{here}{name}", changed)
                if child is not None:
                    stack.append((child, f"{here}{name}/", True))
        finally:
            if owned:
                os.close(folder)


def _visit(folder: int, name: str, relative: str, changed: list[str]) -> int | None:
    """Normalise one entry; returns an open descriptor when it is a folder to walk into.
    The entry is opened without following a link and acted on only if it is still what
    `lstat` saw; one that keeps changing under us is an error, never skipped."""
    for _ in range(3):
        try:
            st = os.lstat(name, dir_fd=folder)
        except FileNotFoundError:
            return None
        if any(kind(st.st_mode) for kind in _SPECIAL):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=folder)
            changed.append(relative)
            return None
        if stat.S_ISLNK(st.st_mode) or not (
            stat.S_ISDIR(st.st_mode) or st.st_mode & _PRIVILEGE_BITS
        ):
            return None
        fd = _open_same(folder, name, st)
        if fd is None:
            continue
        try:
            if _clear_bits(fd, st):
                changed.append(relative)
        except BaseException:
            os.close(fd)
            raise
        if stat.S_ISDIR(st.st_mode):
            return fd
        os.close(fd)
        return None
    raise OSError(f"{relative} kept changing while its modes were normalised")


def _open_same(folder: int, name: str, seen: os.stat_result) -> int | None:
    """Open `name` without following a link, if it is still the entry `lstat` saw."""
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=folder)
    except OSError:
        return None  # gone, or swapped for a link (ELOOP) meanwhile: look again
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino, now.st_mode) != (seen.st_dev, seen.st_ino, seen.st_mode):
        os.close(fd)
        return None
    return fd


def _clear_bits(fd: int, st: os.stat_result) -> bool:
    if not st.st_mode & _PRIVILEGE_BITS:
        return False
    os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~_PRIVILEGE_BITS)
    return True
