"""The host users and groups sandboxed commands run as when the factory runs as root.

Bubblewrap run by root maps the sandbox's user to root outside: a setuid file it leaves in a
shared folder, or a file it owns there, is root's. So as root the factory does not map at
all: bubblewrap starts in the host's user namespace, keeps only the capabilities to change
identity, and `setpriv` drops the command to an unprivileged host uid/gid that no account
uses (a subordinate id, as rootless containers use), with no capabilities, an empty bounding
set and `no_new_privs`. Without root the sandbox's user maps to the factory's own
(unprivileged) user, as before.

Each repository gets its own id from a range: the `codefactory` entry of `/etc/subuid` and
`/etc/subgid` when the host has one (`usermod --add-subuids`), else `DEFAULT_ID` and the
65,536 ids after it; settings may name another. Ids are handed out in order and recorded
(`IdTable`, a file under the data folder), so no two repositories ever share one, whatever
their paths. Per-user kernel limits (inotify instances, message queues, keyrings) and file
ownership then part one repository's sandboxes from another's: a run cannot starve, or
write the files of, a run of another repository.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from codefactory.sandbox.errors import SandboxUnavailable

DEFAULT_ID = 1_879_048_192
"""0x70000000: far above the ranges `useradd` and `newuidmap` hand out by default."""
DEFAULT_COUNT = 65_536
SUBORDINATE_OWNER = "codefactory"


@dataclass(frozen=True)
class HostIds:
    """The unprivileged host uid and gid of every sandboxed command."""

    uid: int
    gid: int

    @property
    def owner(self) -> tuple[int, int]:
        return self.uid, self.gid


@dataclass(frozen=True)
class HostIdRange:
    """`count` uids from `uid_start` and gids from `gid_start`, one pair per repository."""

    uid_start: int
    gid_start: int
    count: int

    def at(self, offset: int) -> HostIds:
        """The `offset`-th pair of the range."""
        return HostIds(self.uid_start + offset, self.gid_start + offset)


class IdTable:
    """Which repository has which ids of a range: a JSON file (`{"<repo path>": offset}`),
    read and written under an exclusive lock, so factory processes sharing a data folder
    agree. `SandboxUnavailable` once every id of the range is taken."""

    def __init__(self, path: Path, ids: HostIdRange) -> None:
        self.path = path
        self.ids = ids

    def for_repository(self, key: str) -> HostIds:
        """The ids of the repository `key` names (its path): the same on every run."""
        with self._locked():
            table = self._read()
            if key not in table:
                taken = set(table.values())
                free = next((i for i in range(self.ids.count) if i not in taken), None)
                if free is None:
                    raise SandboxUnavailable(
                        f"every one of the {self.ids.count} sandbox ids is taken: widen the "
                        "range (sandbox.host_id_count) or remove old repositories from "
                        f"{self.path}"
                    )
                table[key] = free
                self._write(table)
            if not 0 <= table[key] < self.ids.count:
                raise SandboxUnavailable(
                    f"{self.path} gives {key} the id offset {table[key]}, outside the range of "
                    f"{self.ids.count}: the range shrank; widen sandbox.host_id_count back"
                )
            return self.ids.at(table[key])

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text())
            return {str(k): int(v) for k, v in data.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, AttributeError, TypeError) as err:
            raise SandboxUnavailable(
                f"{self.path} is not a table of sandbox ids ({err}); restore it from a backup "
                "(a fresh table would give repositories ids their files do not have)"
            ) from err

    def _write(self, table: dict[str, int]) -> None:
        tmp = self.path.with_suffix(".tmp")
        # a new file, never through a link planted in its place (a data folder a repository
        # can write must not make root truncate a file the link names)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        flags = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(table, indent=1, sort_keys=True))
            out.flush()
            os.fsync(out.fileno())  # a crash leaves the old table or the new, never half
        tmp.rename(self.path)


def subordinate_range(path: Path, owner: str = SUBORDINATE_OWNER) -> tuple[int, int] | None:
    """(first id, count) of `owner`'s range in a subuid/subgid file (`name:start:count`)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, rest = line.partition(":")
        start, _, count = rest.partition(":")
        if name == owner and start.isdigit() and count.isdigit() and int(count) > 0:
            return int(start), int(count)
    return None


def subordinate_start(path: Path, owner: str = SUBORDINATE_OWNER) -> int | None:
    """The first id of `owner`'s range in a subuid/subgid file."""
    found = subordinate_range(path, owner)
    return found[0] if found else None


def host_id_range(
    uid: int | None = None, gid: int | None = None, count: int | None = None
) -> HostIdRange:
    """The ids to run as: the given range, else the `codefactory` subordinate ranges, else
    `DEFAULT_ID` and the `DEFAULT_COUNT` after it. `SandboxUnavailable` for a range that
    holds 0 or an id an account or group on this host already has."""
    subuid = subordinate_range(Path("/etc/subuid"))
    subgid = subordinate_range(Path("/etc/subgid"))
    uid_start = uid if uid is not None else (subuid[0] if subuid else DEFAULT_ID)
    gid_start = gid if gid is not None else (subgid[0] if subgid else DEFAULT_ID)
    counts = [count or DEFAULT_COUNT]
    if count is None:
        counts += [r[1] for r, given in ((subuid, uid), (subgid, gid)) if r and given is None]
    chosen = HostIdRange(uid_start, gid_start, max(1, min(counts)))
    _refuse_taken(chosen)
    return chosen


def host_ids(uid: int | None = None, gid: int | None = None) -> HostIds:
    """One pair of ids (the first of the range `host_id_range` gives)."""
    chosen = host_id_range(uid, gid, 1)
    return HostIds(chosen.uid_start, chosen.gid_start)


def _refuse_taken(ids: HostIdRange) -> None:
    if ids.uid_start <= 0 or ids.gid_start <= 0:
        raise SandboxUnavailable("the sandbox may never run as host uid or gid 0")
    uids = range(ids.uid_start, ids.uid_start + ids.count)
    gids = range(ids.gid_start, ids.gid_start + ids.count)
    for account in pwd.getpwall():
        if account.pw_uid in uids:
            raise SandboxUnavailable(
                f"the sandbox's host uid {account.pw_uid} belongs to the account "
                f"{account.pw_name!r}: choose an unused range (settings sandbox.host_uid and "
                "host_id_count, or a `codefactory` entry in /etc/subuid)"
            )
    for group in grp.getgrall():
        if group.gr_gid in gids:
            raise SandboxUnavailable(
                f"the sandbox's host gid {group.gr_gid} belongs to the group "
                f"{group.gr_name!r}: choose an unused range (sandbox.host_gid)"
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
