"""A full-text index of one repository at one commit, kept on the host in SQLite FTS5.

    <data_dir>/context-index/                     0700
        <sha256 of the repository id>.sqlite      0600, WAL; its -wal and -shm share the mode

The index is built from git objects (`git ls-tree`, `git cat-file --batch`), never from a
worktree, so nothing a checkout's filters or links would do reaches it, and it is
incremental: a table of `(path, blob)` decides which files to add and remove, so an update
to a commit that changed three files reads three blobs. Binary blobs (a NUL in the first
8 KiB) and blobs over `max_blob_bytes` are recorded but not indexed.

Queries are plain text: each word becomes an FTS5 string literal (`"` doubled, wrapped in
quotes), so `body:x OR NEAR(` searches for those characters and never widens the query.
The trigram tokenizer (SQLite 3.34+) matches any substring of three characters or more,
case-insensitively; shorter words cannot be matched and are left out of the query.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from codefactory.sandbox.mirror import SAFE_CONFIG

MAX_BLOB_BYTES = 1_000_000
BINARY_PROBE_BYTES = 8192
MIN_TERM_CHARS = 3
"""The trigram tokenizer matches nothing for a word of fewer characters."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS files ("
    " path TEXT PRIMARY KEY, blob TEXT NOT NULL, doc INTEGER)",  # doc NULL: not indexed
    "CREATE VIRTUAL TABLE IF NOT EXISTS docs USING fts5(path, body, tokenize='trigram')",
)
_SEARCH = """
SELECT path, snippet(docs, 1, '', '', ' … ', 64), bm25(docs), body
FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT ?
"""


class RepositoryIndexError(Exception):
    """The index could not be built or read.

    RepositoryIndexError
    ├── FullTextUnavailable   this Python's SQLite lacks FTS5 or its trigram tokenizer
    └── GitReadFailed         git could not list or read the commit's objects
    """


class FullTextUnavailable(RepositoryIndexError):
    """Python's `sqlite3` was built without FTS5 or with a SQLite older than 3.34 (no
    trigram tokenizer); the repository is still searched with ripgrep."""


class GitReadFailed(RepositoryIndexError):
    """A git command failed on the repository (no such commit, a corrupt object, a timeout)."""


@dataclass(frozen=True, kw_only=True)
class IndexHit:
    """One file matching a query: `line` is where the query's first word first occurs
    (1-based; 0 when only the path matched), `snippet` the text around the best match, and
    `rank` its BM25 score (lower is better, as FTS5 orders)."""

    path: str
    line: int
    snippet: str
    rank: float


@dataclass(frozen=True, kw_only=True)
class IndexUpdate:
    """What one `update` did, in files: `indexed` read and added, `removed` dropped (deleted
    or changed), `skipped` recorded without text (binary or too large), `unchanged` kept."""

    commit: str
    indexed: int
    removed: int
    skipped: int
    unchanged: int
    duration_s: float


@dataclass(frozen=True)
class _Entry:
    path: str
    blob: str
    size: int


class RepositoryIndex:
    """The full-text index of one repository in the SQLite file at `path`."""

    def __init__(
        self, path: Path, *, max_blob_bytes: int = MAX_BLOB_BYTES, git_timeout_s: float = 600.0
    ) -> None:
        """Open (creating, 0600) the index at `path`. Raises `FullTextUnavailable`."""
        require_trigram()
        self.path = path
        self.max_blob_bytes = max_blob_bytes
        self.git_timeout_s = git_timeout_s
        self._lock = threading.Lock()
        _create_private(path)
        self._reader = self._connect()
        with self._reader:
            for statement in _SCHEMA:
                self._reader.execute(statement)

    @classmethod
    def for_repository(cls, data_dir: Path, repository: str) -> RepositoryIndex:
        """The index of `repository` (its id) under `<data_dir>/context-index/`."""
        digest = hashlib.sha256(repository.encode()).hexdigest()
        return cls(data_dir / "context-index" / f"{digest}.sqlite")

    @property
    def commit(self) -> str | None:
        """The full commit id last indexed; None before the first `update`."""
        with self._lock:
            row = self._reader.execute("SELECT value FROM state WHERE key = 'commit'").fetchone()
        return None if row is None else str(row[0])

    def update(self, git_dir: Path, commit: str) -> IndexUpdate:
        """Bring the index to `commit` (a full id or a name git resolves) of the repository
        whose git folder is `git_dir`: the factory's bare mirror (`sandbox.mirror`), never an
        untrusted source's `.git`. One writer at a time: a second waits for the first.

        Raises `GitReadFailed`."""
        started = time.monotonic()
        git = _Git(git_dir, self.git_timeout_s)
        sha = git.resolve(commit)
        tree = git.list_blobs(sha)
        writer = self._connect()
        try:
            writer.execute("BEGIN IMMEDIATE")  # the write lock, held for the whole update
            known = {
                str(path): (str(blob), doc)
                for path, blob, doc in writer.execute("SELECT path, blob, doc FROM files")
            }
            removed = _remove_stale(writer, known, tree)
            wanted = [entry for path, entry in tree.items() if path not in known or path in removed]
            indexed, skipped = self._add(writer, git, wanted)
            writer.execute("INSERT OR REPLACE INTO state VALUES ('commit', ?)", (sha,))
            writer.execute("COMMIT")
        except BaseException:
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            raise
        finally:
            writer.close()
        return IndexUpdate(
            commit=sha,
            indexed=indexed,
            removed=len(removed),
            skipped=skipped,
            unchanged=len(tree) - len(wanted),
            duration_s=time.monotonic() - started,
        )

    def search(self, query: str, *, limit: int = 10) -> list[IndexHit]:
        """Up to `limit` files of the last indexed commit holding every word of `query`
        (case-insensitive substrings of 3+ characters, in the path or the text), best BM25
        first; `[]` when no word is long enough."""
        words = [word for word in query.split() if len(word) >= MIN_TERM_CHARS]
        if not words or limit <= 0:
            return []
        expression = " ".join(fts_literal(word) for word in words)
        with self._lock:
            found = self._reader.execute(_SEARCH, (expression, limit)).fetchall()
        first = words[0].casefold()
        return [
            IndexHit(path=path, line=_line_of(body, first), snippet=snippet, rank=rank)
            for path, snippet, rank, body in found
        ]

    def close(self) -> None:
        """Close the reading connection."""
        with self._lock:
            self._reader.close()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _add(self, writer: sqlite3.Connection, git: _Git, entries: list[_Entry]) -> tuple[int, int]:
        small = [entry for entry in entries if entry.size <= self.max_blob_bytes]
        skipped = len(entries) - len(small)
        for entry in entries:
            if entry.size > self.max_blob_bytes:
                writer.execute("INSERT INTO files VALUES (?, ?, NULL)", (entry.path, entry.blob))
        paths_of: dict[str, list[str]] = {}
        for entry in small:
            paths_of.setdefault(entry.blob, []).append(entry.path)
        indexed = 0
        for blob, content in git.read_blobs(list(paths_of)):
            text = None if b"\0" in content[:BINARY_PROBE_BYTES] else _decode(content)
            for path in paths_of[blob]:
                doc = None
                if text is not None:
                    doc = writer.execute("INSERT INTO docs VALUES (?, ?)", (path, text)).lastrowid
                writer.execute("INSERT INTO files VALUES (?, ?, ?)", (path, blob, doc))
                if doc is None:
                    skipped += 1
                else:
                    indexed += 1
        return indexed, skipped


def fts_literal(word: str) -> str:
    """`word` as an FTS5 string literal: every `"` doubled, the whole in double quotes
    (SQLite FTS5 §3.1); inside one, no character is query syntax."""
    return '"' + word.replace('"', '""') + '"'


def require_trigram() -> None:
    """Raise `FullTextUnavailable` unless `sqlite3` offers FTS5 with the trigram tokenizer."""
    try:
        probe = sqlite3.connect(":memory:")
        try:
            probe.execute("CREATE VIRTUAL TABLE probe USING fts5(body, tokenize='trigram')")
        finally:
            probe.close()
    except sqlite3.Error as err:
        raise FullTextUnavailable(
            f"this Python's SQLite {sqlite3.sqlite_version} lacks FTS5 with the trigram "
            f"tokenizer (SQLite 3.34 or later built with FTS5 is needed): {err}"
        ) from None


def _remove_stale(
    writer: sqlite3.Connection, known: dict[str, tuple[str, int | None]], tree: dict[str, _Entry]
) -> set[str]:
    stale = {
        path for path, (blob, _) in known.items() if path not in tree or tree[path].blob != blob
    }
    for path in stale:
        doc = known[path][1]
        if doc is not None:
            writer.execute("DELETE FROM docs WHERE rowid = ?", (doc,))
        writer.execute("DELETE FROM files WHERE path = ?", (path,))
    return stale


def _line_of(body: str, folded_word: str) -> int:
    """The 1-based line where `folded_word` first occurs in `body`, ignoring case; 0: none."""
    at = body.casefold().find(folded_word)
    return 0 if at < 0 else body.count("\n", 0, at) + 1


def _decode(content: bytes) -> str:
    return content.decode("utf-8", "replace")


def _create_private(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # an older, looser file is tightened
    finally:
        os.close(descriptor)


class _Git:
    """git over one repository folder: fixed environment, no hooks, no fsmonitor."""

    def __init__(self, git_dir: Path, timeout_s: float) -> None:
        self.git_dir = git_dir
        self.timeout_s = timeout_s

    def resolve(self, commit: str) -> str:
        if not commit or commit.startswith("-") or "\0" in commit:
            raise GitReadFailed(f"not a commit name: {commit!r}")
        out = self._run(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{commit}^{{commit}}"
        )
        return out.decode().strip()

    def list_blobs(self, commit: str) -> dict[str, _Entry]:
        """Regular files of `commit` (links and submodules left out): path → entry."""
        entries: dict[str, _Entry] = {}
        for record in self._run("ls-tree", "-r", "-z", "--long", "--full-tree", commit).split(
            b"\0"
        ):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, blob, size = meta.split()
            if kind != b"blob" or mode not in (b"100644", b"100755"):
                continue
            try:
                path = raw_path.decode("utf-8")
            except UnicodeDecodeError:
                continue  # SQLite text is UTF-8; such a name cannot be stored or cited
            entries[path] = _Entry(path=path, blob=blob.decode(), size=int(size))
        return entries

    def read_blobs(self, blobs: list[str]) -> Iterator[tuple[str, bytes]]:
        """`(blob id, content)` for each of `blobs`, streamed through one `cat-file --batch`."""
        if not blobs:
            return
        process = subprocess.Popen(  # noqa: S603 - argv built here, never through a shell
            self._argv("cat-file", "--batch"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self._env(),
        )
        assert process.stdin is not None and process.stdout is not None
        feeder = threading.Thread(target=_feed, args=(process.stdin, blobs), daemon=True)
        watchdog = threading.Timer(self.timeout_s, process.kill)
        feeder.start()
        watchdog.start()
        try:
            for _ in blobs:
                yield _read_object(process.stdout)
        finally:
            watchdog.cancel()
            process.kill()
            process.wait()
            process.stdout.close()
            feeder.join()

    def _run(self, *args: str) -> bytes:
        try:
            result = subprocess.run(  # noqa: S603 - argv built here, never through a shell
                self._argv(*args),
                capture_output=True,
                env=self._env(),
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GitReadFailed(f"git {args[0]} timed out after {self.timeout_s:g} s") from None
        if result.returncode != 0:
            cause = result.stderr.decode("utf-8", "replace").strip() or "no such object"
            raise GitReadFailed(f"git {args[0]} failed in {self.git_dir}: {cause}")
        return result.stdout

    def _argv(self, *args: str) -> list[str]:
        safe = [item for setting in SAFE_CONFIG for item in ("-c", setting)]
        return ["git", f"--git-dir={self.git_dir}", *safe, *args]

    def _env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": "/nonexistent",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0",
            "LC_ALL": "C",
        }


def _feed(stdin: IO[bytes], blobs: list[str]) -> None:
    try:
        for blob in blobs:
            stdin.write(blob.encode() + b"\n")
        stdin.close()
    except (BrokenPipeError, ValueError):
        pass  # git was killed (timeout, or the reader stopped early)


def _read_object(stdout: IO[bytes]) -> tuple[str, bytes]:
    header = stdout.readline()
    fields = header.split()
    if len(fields) != 3 or fields[1] != b"blob":
        raise GitReadFailed(f"git cat-file answered {header[:200]!r} (missing object or timeout)")
    size = int(fields[2])
    content = stdout.read(size)
    stdout.read(1)  # the newline after each object
    if len(content) != size:
        raise GitReadFailed("git cat-file stopped mid-object (killed after its timeout?)")
    return fields[0].decode(), content
