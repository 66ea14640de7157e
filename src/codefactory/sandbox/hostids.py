"""The host user and group a sandboxed command runs as when the factory runs as root.

Bubblewrap run by root maps the sandbox's user to root outside: a setuid file it leaves in a
shared folder, or a file it owns there, is root's. So as root the factory does not map at
all: bubblewrap starts in the host's user namespace, keeps only the capabilities to change
identity, and `setpriv` drops the command to an unprivileged host uid/gid that no account
uses (a subordinate id, as rootless containers use), with no capabilities, an empty bounding
set and `no_new_privs`. Without root the sandbox's user maps to the factory's own
(unprivileged) user, as before.

The id is the first of the `codefactory` entry in `/etc/subuid` and `/etc/subgid` when the
host has one (`usermod --add-subuids`), else `DEFAULT_ID`; settings may name another.
"""

from __future__ import annotations

import pwd
from dataclasses import dataclass
from pathlib import Path

from codefactory.sandbox.errors import SandboxUnavailable

DEFAULT_ID = 1_879_048_192
"""0x70000000: far above the ranges `useradd` and `newuidmap` hand out by default."""
SUBORDINATE_OWNER = "codefactory"


@dataclass(frozen=True)
class HostIds:
    """The unprivileged host uid and gid of every sandboxed command."""

    uid: int
    gid: int

    @property
    def owner(self) -> tuple[int, int]:
        return self.uid, self.gid


def subordinate_start(path: Path, owner: str = SUBORDINATE_OWNER) -> int | None:
    """The first id of `owner`'s range in a subuid/subgid file (`name:start:count`)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, rest = line.partition(":")
        start, _, count = rest.partition(":")
        if name == owner and start.isdigit() and count.isdigit() and int(count) > 0:
            return int(start)
    return None


def host_ids(uid: int | None = None, gid: int | None = None) -> HostIds:
    """The ids to run as: the given ones, else the subordinate range's first, else the default.
    `SandboxUnavailable` for root, or for an id an account on this host already has."""
    chosen = HostIds(
        uid=uid if uid is not None else subordinate_start(Path("/etc/subuid")) or DEFAULT_ID,
        gid=gid if gid is not None else subordinate_start(Path("/etc/subgid")) or DEFAULT_ID,
    )
    if chosen.uid == 0 or chosen.gid == 0:
        raise SandboxUnavailable("the sandbox may never run as host uid or gid 0")
    try:
        account = pwd.getpwuid(chosen.uid).pw_name
    except KeyError:
        return chosen
    raise SandboxUnavailable(
        f"the sandbox's host uid {chosen.uid} belongs to the account {account!r}: choose an "
        "unused id (setting sandbox.host_uid, or a `codefactory` entry in /etc/subuid)"
    )


def passwd_lines(ids: HostIds | None) -> tuple[str, str]:
    """`/etc/passwd` and `/etc/group` as the sandbox sees them: none of the host's accounts."""
    users = ["root:x:0:0:root:/root:/usr/sbin/nologin"]
    groups = ["root:x:0:"]
    if ids is not None:
        users.append(f"sandbox:x:{ids.uid}:{ids.gid}:sandbox:/tmp:/bin/sh")
        groups.append(f"sandbox:x:{ids.gid}:")
    users.append("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin")
    groups.append("nogroup:x:65534:")
    return "\n".join(users) + "\n", "\n".join(groups) + "\n"
