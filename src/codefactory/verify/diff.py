"""A change together with the base versions of its files, and the line-level diff between them.

The gate reads the base versions from a workspace at the base commit (never from the
engine's workspace, which the engine could have rewritten) and hands checks a `DiffedChange`;
a check given a plain `Change` treats every line of a changed file as changed.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import io
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from codefactory.domain import Change, FileChange
from codefactory.sandbox.layout import SH
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.errors import BaseUnreadable

# Every existing path named as an argument, in one tar stream, base64 so stdout stays text.
_TAR_EXISTING = (
    'for f; do [ -f "$f" ] && printf "%s\\0" "$f"; done '
    "| /usr/bin/tar --null -T - -cf - | /usr/bin/base64 -w0"
)


@dataclass(frozen=True, kw_only=True)
class Hunk:
    """One changed region: base lines [base_start, base_end), new lines [new_start, new_end)."""

    base_start: int
    base_end: int
    new_start: int
    new_end: int


@dataclass(frozen=True, kw_only=True)
class DiffedChange(Change):
    """A change whose files' base versions are known (None: the file did not exist)."""

    base: Mapping[str, bytes | None] = field(default_factory=dict, hash=False, compare=False)

    def base_content(self, path: str) -> bytes | None:
        return self.base.get(path)

    def reversed(self) -> DiffedChange:
        """The same paths going from the change back to the base, for scanning the base."""
        files = tuple(FileChange(path=p, content=self.base.get(p)) for p in self.paths)
        return DiffedChange(files=files, base={f.path: f.content for f in self.files})


def base_of(change: Change, path: str) -> tuple[bool, bytes | None]:
    """(known, content) of `path` at the base: unknown for a plain `Change`."""
    if isinstance(change, DiffedChange) and path in change.base:
        return True, change.base[path]
    return False, None


def hunks(base: bytes | None, new: bytes | None) -> list[Hunk]:
    """The changed regions between two versions, 1-based line numbers, ends exclusive."""
    matcher = difflib.SequenceMatcher(None, _lines(base), _lines(new), autojunk=False)
    return [
        Hunk(base_start=i1 + 1, base_end=i2 + 1, new_start=j1 + 1, new_end=j2 + 1)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def added_lines(change: Change, path: str) -> set[int] | None:
    """1-based lines of the new version that the change added or modified; None: all lines."""
    known, base = base_of(change, path)
    if not known:
        return None
    new = next((f.content for f in change.files if f.path == path), None)
    return {n for h in hunks(base, new) for n in range(h.new_start, h.new_end)}


def changed_line_count(change: Change) -> int:
    """Lines added plus lines removed over the change (every line when the base is unknown)."""
    total = 0
    for file in change.files:
        known, base = base_of(change, file.path)
        if not known:
            total += len(_lines(file.content))
            continue
        for h in hunks(base, file.content):
            total += (h.base_end - h.base_start) + (h.new_end - h.new_start)
    return total


def read_files(workspace: Workspace, paths: Iterable[str]) -> dict[str, bytes | None]:
    """The content of each path in a workspace (None: absent or not a file).

    One command reads them all (a tar stream, base64 so stdout stays text); when that fails
    (the stream is cut by the sandbox's output limit, say) each file is read on its own.
    """
    wanted = sorted(set(paths))
    if not wanted:
        return {}
    try:
        return _read_at_once(workspace, wanted)
    except BaseUnreadable:
        return {path: workspace.read_file(path) for path in wanted}


def _read_at_once(workspace: Workspace, wanted: list[str]) -> dict[str, bytes | None]:
    result = workspace.exec([SH, "-c", _TAR_EXISTING, "sh", *wanted], phase=Phase.CHECK)
    if result.timed_out or result.exit_code != 0:
        raise BaseUnreadable(result.stderr.strip() or f"tar exited {result.exit_code}")
    try:
        raw = base64.b64decode(result.stdout.strip(), validate=True)
    except binascii.Error as exc:  # cut by the sandbox's output limit
        raise BaseUnreadable(f"the base files are too large to read back ({exc})") from exc
    found: dict[str, bytes | None] = dict.fromkeys(wanted)
    found.update(_untar(raw))
    return found


def with_base(change: Change, base: Mapping[str, bytes | None]) -> DiffedChange:
    return DiffedChange(files=change.files, base=dict(base))


def _untar(raw: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    files[member.name] = handle.read()
    except tarfile.TarError as exc:
        raise BaseUnreadable(f"the base files could not be read back: {exc}") from exc
    return files


def _lines(content: bytes | None) -> list[bytes]:
    return content.splitlines() if content else []
