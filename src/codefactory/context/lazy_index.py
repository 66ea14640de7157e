"""A repository's full-text index, brought to a run's base commit only when a search first
needs it: runs that never search the index never pay for its update."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codefactory.context.connectors.repo_index import IndexHit, RepositoryIndex


class LazyIndex:
    """`RepositoryIndex.for_repository(data_dir, repository)` updated to `commit` from the git
    folder `path_of()` names, at the first `search`. A failure is reported once through
    `on_error` and the index answers nothing from then on (ripgrep still searches)."""

    def __init__(
        self,
        *,
        path_of: Callable[[], Path],
        data_dir: Path,
        repository: str,
        commit: str,
        on_error: Callable[[Exception], None],
    ) -> None:
        self._path_of = path_of
        self._data_dir = data_dir
        self._repository = repository
        self._commit = commit
        self._on_error = on_error
        self._lock = threading.Lock()
        self._index: RepositoryIndex | None = None
        self._failed = False

    @property
    def commit(self) -> str | None:
        """The commit the index answers for (None before the first search, or failed)."""
        return self._index.commit if self._index is not None else None

    def search(self, query: str, *, limit: int = 10) -> list[IndexHit]:
        """`RepositoryIndex.search` once the index is at the run's commit; [] if it cannot be."""
        index = self._ready()
        return index.search(query, limit=limit) if index is not None else []

    def close(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None

    def _ready(self) -> RepositoryIndex | None:
        from codefactory.context.connectors.repo_index import (
            RepositoryIndex,
            RepositoryIndexError,
        )

        with self._lock:
            if self._index is None and not self._failed:
                try:
                    index = RepositoryIndex.for_repository(self._data_dir, self._repository)
                    index.update(self._path_of(), self._commit)
                except (RepositoryIndexError, OSError, ValueError) as err:
                    self._failed = True
                    self._on_error(err)
                    return None
                self._index = index
            return self._index
