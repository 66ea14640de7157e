"""Bounded reads of workspace files from inside the sandbox: a tool or the prompt never
pulls more of a file into the harness process than it will show (a repository or an engine
can make a file as large as the sandbox's file-size limit)."""

from __future__ import annotations

from dataclasses import dataclass

from codefactory.sandbox.port import Phase, Workspace

_SIZE = 'test -f "$1" || exit 3; exec /usr/bin/stat -L -c %s -- "$1"'
_HEAD = 'test -f "$1" || exit 3; exec /usr/bin/head -c "$2" -- "$1"'


@dataclass(frozen=True, kw_only=True)
class Head:
    """The first bytes of a file and its whole size in bytes."""

    content: bytes
    size: int


def file_size(workspace: Workspace, path: str) -> int | None:
    """The size in bytes of the regular file `path` (links followed inside the sandbox);
    None when there is none. Raises OSError when the sandbox cannot tell."""
    result = workspace.exec(["/usr/bin/sh", "-c", _SIZE, "sh", path], phase=Phase.ENGINE)
    if result.exit_code == 3:
        return None
    if not result.ok or not result.stdout.strip().isdigit():
        raise OSError(f"cannot tell the size of {path}: {result.stderr.strip()[-200:]}")
    return int(result.stdout.strip())


def read_head(workspace: Workspace, path: str, max_bytes: int) -> Head | None:
    """At most `max_bytes` of `path` (whole when smaller) and its size; None when absent."""
    size = file_size(workspace, path)
    if size is None:
        return None
    if size <= max_bytes:
        content = workspace.read_file(path, phase=Phase.ENGINE)
        return None if content is None else Head(content=content, size=size)
    result = workspace.exec(
        ["/usr/bin/sh", "-c", _HEAD, "sh", path, str(max_bytes)], phase=Phase.ENGINE
    )
    if not result.ok:
        raise OSError(f"cannot read {path}: {result.stderr.strip()[-200:]}")
    return Head(content=result.stdout.encode("utf-8", "replace")[:max_bytes], size=size)
