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
    if _libc.syscall(number, 0, None) != 0:
        raise SandboxUnavailable(f"setgroups failed: {os.strerror(ctypes.get_errno())}")
    _libc.setfsgid(owner.gid)
    _libc.setfsuid(owner.uid)
    try:
        if _libc.setfsuid(-1) != owner.uid or _libc.setfsgid(-1) != owner.gid:
            raise SandboxUnavailable(f"could not take the file-system identity of uid {owner.uid}")
        yield
    finally:
        _libc.setfsuid(os.geteuid())
        _libc.setfsgid(os.getegid())
        array = (ctypes.c_uint * max(1, len(groups)))(*groups)
        _libc.syscall(number, len(groups), array)
