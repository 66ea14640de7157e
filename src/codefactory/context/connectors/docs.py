"""Documentation folders on the host (Markdown, reStructuredText, plain text) as a source.

An item's id is `<folder index>/<path relative to that folder>` (`0/runbooks/payments.md`),
the index counting the configured folders from 0. A reference that leaves its folder (`..`,
an absolute path, a symlink resolving outside) or names another kind of file is
`OutOfScope`; a file over `MAX_FILE_BYTES` is `ResponseTooLarge`, never read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from codefactory.context.errors import ContextError, NotFound, OutOfScope, ResponseTooLarge
from codefactory.context.port import ContextItem, Scope
from codefactory.context.text import clip

if TYPE_CHECKING:
    from codefactory.config import Settings

NAME = "docs"
SCOPE_KIND = "folder"
SUFFIXES = frozenset({".md", ".markdown", ".rst", ".txt"})
MAX_FILE_BYTES = 2 * 1024 * 1024
"""A documentation file larger than this (2 MiB) is not read."""
_REF = re.compile(r"^(?P<index>\d{1,4})/(?P<path>.+)$")


class DocsFolderConnector:
    """The documentation files under `folders` (searched recursively; hidden directories
    and files are skipped). `search` ranks files by how many of the query's words they
    contain (case-insensitive), then by id; `fetch` answers one file. Texts longer than
    `max_item_chars` are clipped."""

    name = NAME

    def __init__(self, folders: Sequence[Path], data_class: str, max_item_chars: int) -> None:
        if not folders:
            raise ValueError("docs: at least one folder is needed")
        self.folders = tuple(Path(folder).resolve() for folder in folders)
        self.scope = Scope(kind=SCOPE_KIND, values=tuple(str(f) for f in self.folders))
        self.data_class = data_class
        self.max_item_chars = max_item_chars

    def search(self, query: str, *, limit: int = 10) -> list[ContextItem]:
        """Up to `limit` files containing at least one of the query's words."""
        words = sorted({word for word in query.lower().split() if word})
        if not words:
            raise ContextError(self.name, "the search query is empty")
        ranked: list[tuple[int, str, Path]] = []
        for ref, path in self._files():
            text = _read(path).lower()
            hits = sum(word in text for word in words)
            if hits:
                ranked.append((-hits, ref, path))
        ranked.sort()
        return [self._item(ref, path) for _, ref, path in ranked[: max(limit, 0)]]

    def fetch(self, ref: str) -> ContextItem:
        """The file `ref` names (`0/runbooks/payments.md`). Raises `OutOfScope`, `NotFound`
        or `ResponseTooLarge`."""
        return self._item(ref, self._resolve(ref))

    def _resolve(self, ref: str) -> Path:
        match = _REF.match(ref)
        if match is None or int(match.group("index")) >= len(self.folders):
            raise OutOfScope(self.name, f"{ref[:120]!r} is not <folder index>/<relative path>")
        relative = match.group("path")
        parts = PurePosixPath(relative).parts
        if relative.startswith(("/", "\\")) or ".." in parts or "\\" in relative or "\0" in ref:
            raise OutOfScope(self.name, f"{ref[:120]!r} leaves its folder")
        folder = self.folders[int(match.group("index"))]
        path = (folder / relative).resolve()
        if not path.is_relative_to(folder):
            raise OutOfScope(self.name, f"{ref[:120]!r} resolves outside its folder")
        if path.suffix.lower() not in SUFFIXES:
            raise OutOfScope(self.name, f"{ref[:120]!r} is not a documentation file")
        if not path.is_file():
            raise NotFound(self.name, f"no such file: {ref[:120]!r}")
        return path

    def _files(self) -> Iterator[tuple[str, Path]]:
        """`(ref, path)` of every documentation file inside the folders, symlinks that
        resolve outside their folder and files over the size cap left out."""
        for index, folder in enumerate(self.folders):
            for root, dirs, files in os.walk(folder):
                dirs[:] = [name for name in dirs if not name.startswith(".")]
                for name in files:
                    path = Path(root, name)
                    if name.startswith(".") or path.suffix.lower() not in SUFFIXES:
                        continue
                    real = path.resolve()
                    if not real.is_relative_to(folder) or not real.is_file():
                        continue
                    if real.stat().st_size <= MAX_FILE_BYTES:
                        yield f"{index}/{path.relative_to(folder).as_posix()}", real

    def _item(self, ref: str, path: Path) -> ContextItem:
        text = _read(path, refuse_over=self.name)
        clipped, truncated = clip(text, self.max_item_chars)
        return ContextItem(
            source=self.name,
            id=ref,
            title=_title(text) or path.name,
            text=clipped,
            data_class=self.data_class,
            uri=str(path),
            truncated=truncated,
        )


def docs_connector(settings: Settings) -> DocsFolderConnector | None:
    """The connector of `context.docs_folders` (class `context.docs.data_class`, items
    clipped at `context.max_item_chars`); None when no folder is configured."""
    if not settings.context.docs_folders:
        return None
    return DocsFolderConnector(
        settings.context.docs_folders,
        settings.context.docs.data_class,
        settings.context.max_item_chars,
    )


def _read(path: Path, refuse_over: str = "") -> str:
    """The file's text (UTF-8, undecodable bytes replaced), opened without following a
    symlink swapped in after the path was resolved; over `MAX_FILE_BYTES` is
    `ResponseTooLarge` (named for the connector `refuse_over`) or `""` while searching."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as err:
        raise NotFound(NAME, f"{path.name} cannot be read: {err.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if os.fstat(handle.fileno()).st_size > MAX_FILE_BYTES:
            if not refuse_over:
                return ""
            raise ResponseTooLarge(
                refuse_over, f"{path.name} is over {MAX_FILE_BYTES} bytes; it was not read"
            )
        return handle.read(MAX_FILE_BYTES + 1).decode("utf-8", errors="replace")


def _title(text: str) -> str:
    """The first Markdown heading (`# Title`), if any, among the first lines."""
    for line in text.splitlines()[:20]:
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""
