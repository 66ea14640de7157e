"""Read a folder someone else owns with that owner's rights, not the factory's.

The factory runs as root and is handed folders (source repositories) that other users own
and control: every component below their folder can be swapped for a link to a root-only
file between any check and any read. Checks cannot close that race; reading with the
owner's own file-system identity does, because then the kernel refuses what the owner could
not read anyway. Linux keeps the file-system uid and gid and the supplementary groups per
thread, so `reading_as` changes them for the calling thread only (raw `setfsuid`,
`setfsgid` and `setgroups` system calls: glibc's `setgroups` would change every thread),
and a change of the file-system uid from 0 drops CAP_DAC_OVERRIDE and its kin for that
thread until it is set back (capabilities(7)).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import pwd
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from codefactory.sandbox.errors import SandboxUnavailable

_libc = ctypes.CDLL(None, use_errno=True)
_SETGROUPS = {"x86_64": 116, "aarch64": 159}


@dataclass(frozen=True)
class Owner:
    """A user the factory reads for: uid and primary gid."""

    uid: int
    gid: int

    @classmethod
    def of(cls, folder: Path) -> Owner:
        """The owner of `folder` (its primary group from the account, else the folder's)."""
        info = folder.stat()
        try:
            gid = pwd.getpwuid(info.st_uid).pw_gid
        except KeyError:
            gid = info.st_gid
        return cls(info.st_uid, gid)

    @property
    def is_us(self) -> bool:
        return self.uid == os.geteuid()


@contextlib.contextmanager
def reading_as(owner: Owner | None) -> Iterator[None]:
    """File access in this thread with `owner`'s uid and gid and no supplementary groups;
    nothing changes when `owner` is None or is this process's own user."""
    if owner is None or owner.is_us:
        yield
        return
    number = _SETGROUPS.get(platform.machine())
    if number is None:
        raise SandboxUnavailable(
            f"reading as another user is not supported on {platform.machine()}"
        )
    groups = os.getgroups()
    before = (_libc.setfsuid(-1), _libc.setfsgid(-1))  # -1 changes nothing, returns the current
    if _libc.syscall(number, 0, None) != 0:
        raise SandboxUnavailable(f"setgroups failed: {os.strerror(ctypes.get_errno())}")
    _libc.setfsgid(owner.gid)
    _libc.setfsuid(owner.uid)
    try:
        if _libc.setfsuid(-1) != owner.uid or _libc.setfsgid(-1) != owner.gid:
            raise SandboxUnavailable(f"could not take the file-system identity of uid {owner.uid}")
        yield
    finally:
        _libc.setfsuid(before[0])
        _libc.setfsgid(before[1])
        array = (ctypes.c_uint * max(1, len(groups)))(*groups)
        _libc.syscall(number, len(groups), array)


_MAX_LINKS = 40


def controller(path: Path) -> tuple[Owner, Path]:
    """The user who may change what `path` names, and the real path it names, from one walk
    of the path as given, link by link and `..` by `..` as the kernel resolves them (never
    normalised first: `link/..` is the link's target's parent). A folder on the way owned
    by a user other than root hands control to that user; in a sticky folder others may
    write (`/tmp`), the entry's owner controls the entry; a folder several users may write
    without the sticky bit is refused (`ValueError`), whoever owns it; a link keeps the
    control it was reached with, and a path two users control (a link of one into the
    other's folders) is refused. When root alone controls the whole way, the owner of the
    folder it ends at."""
    pending = list((Path.cwd() / path).parts[1:])
    current = Path("/")
    uid: int | None = None
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            current = current.parent
            continue
        uid = _control(current, part, uid)
        if os.path.islink(current / part):
            links += 1
            if links > _MAX_LINKS:
                raise ValueError("too many levels of symbolic links")
            target = Path(os.readlink(current / part))
            pending = list(target.parts[1:] if target.is_absolute() else target.parts) + pending
            if target.is_absolute():
                current = Path("/")
            continue
        current = current / part
    if uid is None:
        return Owner.of(current), current
    return _owner(uid, current.stat().st_gid), current


def _control(folder: Path, name: str, uid: int | None) -> int | None:
    """Who controls `folder/name`, given who controlled the way to `folder`."""
    holder = os.lstat(folder)
    entry = os.lstat(folder / name)
    found = holder.st_uid if holder.st_uid != 0 else None
    if holder.st_mode & 0o022:  # others may write the folder: its entries are theirs too
        if not holder.st_mode & 0o1000:
            raise ValueError(f"{folder} may be written by several users")
        if entry.st_uid not in (0, holder.st_uid):
            found = entry.st_uid if found is None else -1
    if found == -1 or (found is not None and uid is not None and found != uid):
        raise ValueError(f"{folder / name} is controlled by more than one user")
    return found if found is not None else uid


def _owner(uid: int, fallback_gid: int) -> Owner:
    try:
        return Owner(uid, pwd.getpwuid(uid).pw_gid)
    except KeyError:
        return Owner(uid, fallback_gid)
