"""Read files beneath a root folder without ever following a symbolic link.

A repository or a workspace is untrusted: any folder on a path may be a link to `/etc` or to
the factory's keys, and may be swapped for one while the factory reads. So every component
is resolved by the kernel with `openat2(2)` and `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
RESOLVE_NO_MAGICLINKS`, which refuses a link anywhere on the path and any escape from the
root, atomically. Kernels without `openat2` (before 5.6, or a seccomp filter that hides it)
get the same guarantee one component at a time: each folder is opened with `O_NOFOLLOW`
relative to its parent's descriptor. Only regular files are read; a path is first opened
with `O_PATH`, which has no side effect even on a device or a FIFO, and reopened for
reading only once `fstat` says it is a regular file.

BeneathError(SandboxError)
 ├── LinkInPath        a folder on the path is a symbolic link (the path leaves the tree)
 ├── NotARegularFile   the path is a symlink, folder, FIFO, socket or device, or is missing
 └── FileTooLarge      the file is larger than the caller's cap
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat
from pathlib import Path

from codefactory.sandbox.errors import SandboxError

SYS_OPENAT2 = 437  # the same number on every architecture (the unified syscall table, 5.6+)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC  # via /proc/self/fd
_KINDS = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "dir"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "device"),
    (stat.S_ISBLK, "device"),
)


class BeneathError(SandboxError):
    """A path beneath a root could not be read as a regular file; `kind` says what it is."""

    def __init__(self, root: Path, relative: str, kind: str, message: str) -> None:
        super().__init__(f"{relative!r} beneath {root}: {message}")
        self.root = root
        self.relative = relative
        self.kind = kind


class LinkInPath(BeneathError):
    """A folder on the path is a symbolic link: what lies past it is outside the tree."""

    def __init__(self, root: Path, relative: str) -> None:
        super().__init__(root, relative, "link-in-path", "a folder on the path is a symlink")


class NotARegularFile(BeneathError):
    """The path is a `symlink`, `dir`, `fifo`, `socket` or `device`, or is `missing`."""

    def __init__(self, root: Path, relative: str, kind: str) -> None:
        what = {"missing": "missing", "dir": "a folder, not a regular file"}
        super().__init__(root, relative, kind, what.get(kind, f"a {kind}, not a regular file"))


class FileTooLarge(BeneathError):
    """The file holds more than `max_bytes`."""

    def __init__(self, root: Path, relative: str, size: int, max_bytes: int) -> None:
        message = f"{size} bytes, more than the {max_bytes} allowed"
        super().__init__(root, relative, "file", message)
        self.size = size
        self.max_bytes = max_bytes


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.syscall.restype = ctypes.c_long
_openat2_missing = False


def read_beneath(root: Path, relative: str, *, max_bytes: int) -> bytes:
    """The content of the regular file `relative` below `root`, never through a link.
    Raises `LinkInPath`, `NotARegularFile` (with its kind) or `FileTooLarge`."""
    fd = _open_path(root, relative)
    try:
        kind = _kind_of(os.fstat(fd).st_mode)
        if kind != "file":
            raise NotARegularFile(root, relative, kind)
        readable = _reopen(fd)
    finally:
        os.close(fd)
    try:
        return _read_capped(readable, root, relative, max_bytes)
    finally:
        os.close(readable)


def kind_beneath(root: Path, relative: str) -> str:
    """What `relative` is below `root`, without following a link: "file", "dir", "symlink",
    "fifo", "socket", "device", "missing", or "link-in-path" (a folder on the way is a link)."""
    try:
        fd = _open_path(root, relative)
    except BeneathError as err:
        return err.kind
    try:
        return _kind_of(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def list_beneath(root: Path, relative: str = "") -> list[tuple[str, str]]:
    """(name, kind) of each entry of the folder `relative` below `root`, sorted by name;
    the entries are not followed. Raises `NotARegularFile` when it is no folder."""
    fd = _open_path(root, relative) if relative else _open_root(root)
    try:
        kind = _kind_of(os.fstat(fd).st_mode)
        if kind != "dir":
            raise NotARegularFile(root, relative, kind)
        listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        with os.scandir(listing) as entries:
            names = sorted(entry.name for entry in entries)
        return [(name, _kind_at(listing, name)) for name in names]
    finally:
        os.close(listing)


def _open_path(root: Path, relative: str) -> int:
    """An `O_PATH` descriptor of `relative` below `root` (a trailing link is not followed:
    the descriptor is the link's). `LinkInPath` or `NotARegularFile("missing")` otherwise."""
    parts = _parts(relative)
    top = _open_root(root)
    try:
        if not parts:
            return os.dup(top)
        if not _openat2_missing:
            fd = _openat2(top, "/".join(parts), root, relative)
            if fd is not None:
                return fd
        return _walk(top, parts, root, relative)
    finally:
        os.close(top)


def _open_root(root: Path) -> int:
    """The root itself is the caller's choice, so it may be reached through a link."""
    try:
        return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise NotARegularFile(root, "", "missing") from err


def _openat2(top: int, path: str, root: Path, relative: str) -> int | None:
    """openat2 with the resolve flags; None when this kernel has no openat2."""
    global _openat2_missing
    how = _OpenHow(flags=_PATH_FLAGS, mode=0, resolve=_RESOLVE)
    encoded = os.fsencode(path)
    for _ in range(8):  # EAGAIN: a rename raced the lookup; try again
        fd = _libc.syscall(
            ctypes.c_long(SYS_OPENAT2),
            ctypes.c_int(top),
            ctypes.c_char_p(encoded),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code in (errno.ENOSYS, errno.EPERM):  # no openat2, or a filter refuses it
            _openat2_missing = True
            return None
        if code == errno.EAGAIN:
            continue
        if code in (errno.ELOOP, errno.EXDEV):
            raise LinkInPath(root, relative)
        if code in (errno.ENOENT, errno.ENOTDIR):
            raise NotARegularFile(root, relative, "missing")
        raise OSError(code, os.strerror(code), relative)
    raise OSError(errno.EAGAIN, "the path kept changing while it was opened", relative)


def _walk(top: int, parts: list[str], root: Path, relative: str) -> int:
    """The same resolution one component at a time, each folder opened relative to its
    parent with `O_NOFOLLOW`."""
    here = os.dup(top)
    try:
        for part in parts[:-1]:
            try:
                below = os.open(part, _PATH_FLAGS | os.O_DIRECTORY, dir_fd=here)
            except OSError as err:
                if _kind_at(here, part) == "symlink":
                    raise LinkInPath(root, relative) from err
                raise NotARegularFile(root, relative, "missing") from err
            if stat.S_ISLNK(os.fstat(below).st_mode):  # O_PATH | O_NOFOLLOW opens a link
                os.close(below)
                raise LinkInPath(root, relative)
            os.close(here)
            here = below
        try:
            return os.open(parts[-1], _PATH_FLAGS, dir_fd=here)
        except OSError as err:
            raise NotARegularFile(root, relative, "missing") from err
    finally:
        os.close(here)


def _reopen(path_fd: int) -> int:
    """A readable descriptor of the very file an `O_PATH` descriptor names (through
    `/proc/self/fd`, the one way to reopen it: no path is looked up again)."""
    fd = os.open(f"/proc/self/fd/{path_fd}", _READ_FLAGS)
    opened, named = os.fstat(fd), os.fstat(path_fd)
    if (opened.st_dev, opened.st_ino) != (named.st_dev, named.st_ino):
        os.close(fd)
        raise OSError(errno.ESTALE, "the file changed while it was opened")
    return fd


def _read_capped(fd: int, root: Path, relative: str, max_bytes: int) -> bytes:
    size = os.fstat(fd).st_size
    if size > max_bytes:
        raise FileTooLarge(root, relative, size, max_bytes)
    chunks = []
    total = 0
    while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:  # it grew while we read
            raise FileTooLarge(root, relative, total, max_bytes)
    return b"".join(chunks)


def _parts(relative: str) -> list[str]:
    """The components of a relative path; absolute paths and `..` are refused."""
    if relative.startswith("/") or "\0" in relative:
        raise ValueError(f"paths beneath a root must be relative: {relative!r}")
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"paths beneath a root may not climb out with '..': {relative!r}")
    return parts


def _kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "device")


def _kind_at(folder: int, name: str) -> str:
    try:
        return _kind_of(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return "missing"
