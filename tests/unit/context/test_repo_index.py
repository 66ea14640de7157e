"""The repository's full-text index over real git repositories and a real SQLite FTS5 file."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from codefactory.context.connectors.repo_index import (
    GitReadFailed,
    RepositoryIndex,
    fts_literal,
)
from tests.conftest import git, make_repo

FILES = {
    "src/payments.py": "def settle_invoice(invoice):\n    return invoice.total\n",
    "src/ledger.py": "class Ledger:\n    def post(self, entry):\n        self.rows.append(entry)\n",
    "docs/guide.md": "# Guide\n\nSettle each invoice before the ledger closes.\n",
    "README.md": 'Say "hello" to the NEAR( service; body:secret OR whatever.\n',
}


def commit(repo: Path, message: str = "change") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    make_repo(tmp_path / "repo", FILES)
    return tmp_path / "repo"


@pytest.fixture
def index(tmp_path: Path) -> RepositoryIndex:
    return RepositoryIndex.for_repository(tmp_path / "data", "github.com/bank/payments")


def paths(index: RepositoryIndex, query: str) -> list[str]:
    return sorted(hit.path for hit in index.search(query))


def test_an_index_is_built_from_the_commits_objects(repo: Path, index: RepositoryIndex) -> None:
    (repo / "src/payments.py").write_text("uncommitted worktree text: zanzibar\n")
    head = git(repo, "rev-parse", "HEAD")
    update = index.update(repo / ".git", "HEAD")
    assert (update.commit, update.indexed, update.removed, update.skipped) == (head, 4, 0, 0)
    assert index.commit == head
    assert paths(index, "zanzibar") == []  # the worktree is never read
    hits = index.search("INVOICE")
    assert {hit.path for hit in hits} == {"src/payments.py", "docs/guide.md"}
    by_path = {hit.path: hit for hit in hits}
    assert by_path["docs/guide.md"].line == 3
    assert "invoice" in by_path["docs/guide.md"].snippet
    assert paths(index, "ledger post") == ["src/ledger.py"]  # every word, any order
    assert paths(index, "guide.md") == ["docs/guide.md"]  # the path is searched too


def test_the_index_file_is_private(tmp_path: Path, index: RepositoryIndex) -> None:
    folder = tmp_path / "data" / "context-index"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(index.path.stat().st_mode) == 0o600
    assert index.path.parent == folder and len(index.path.stem) == 64
    other = RepositoryIndex.for_repository(tmp_path / "data", "github.com/bank/other")
    assert other.path != index.path


def test_an_update_reindexes_only_what_changed(repo: Path, index: RepositoryIndex) -> None:
    first = index.update(repo / ".git", "HEAD")
    (repo / "pkg").mkdir()
    for number in range(20):
        (repo / f"pkg/mod{number}.py").write_text(f"VALUE_{number} = {number}\n")
    commit(repo)
    second = index.update(repo / ".git", "HEAD")
    assert (second.indexed, second.removed, second.unchanged) == (20, 0, 4)
    (repo / "pkg/mod1.py").write_text("CHANGED_1 = 'changed'\n")
    (repo / "pkg/mod2.py").unlink()
    git(repo, "mv", "pkg/mod3.py", "pkg/renamed.py")
    (repo / "pkg/new.py").write_text("brand_new = True\n")
    third = index.update(repo / ".git", commit(repo))
    # changed, renamed and added are read; changed, deleted and renamed-away are dropped
    assert (third.indexed, third.removed, third.unchanged) == (3, 3, 21)
    assert "pkg/mod1.py" not in paths(index, "VALUE_1")
    assert paths(index, "'changed'") == ["pkg/mod1.py"]
    assert paths(index, "VALUE_2") == []
    assert paths(index, "VALUE_3") == ["pkg/renamed.py"]
    again = index.update(repo / ".git", "HEAD")
    assert (again.indexed, again.removed, again.unchanged) == (0, 0, 24)
    back = index.update(repo / ".git", first.commit)  # an older commit is an update too
    assert back.removed == 20 and paths(index, "VALUE_") == []


def test_the_query_is_text_never_fts_syntax(repo: Path, index: RepositoryIndex) -> None:
    index.update(repo / ".git", "HEAD")
    assert paths(index, "body:secret") == ["README.md"]
    assert paths(index, "NEAR(") == ["README.md"]
    assert paths(index, '"hello"') == ["README.md"]
    assert paths(index, 'say "hello') == ["README.md"]
    assert paths(index, "invoice OR class") == []  # OR is a word here, not an operator
    assert paths(index, "body:x OR NEAR(") == []
    assert paths(index, "* ^ - ( ) {path} :") == []  # nothing to match, no error
    assert paths(index, "in") == []  # too short for trigrams: nothing, not everything
    assert fts_literal('a"b') == '"a""b"'


def test_binary_and_large_blobs_are_recorded_not_indexed(
    tmp_path: Path, index: RepositoryIndex
) -> None:
    make_repo(tmp_path / "big", {"small.txt": "findme small\n"})
    repo = tmp_path / "big"
    (repo / "blob.bin").write_bytes(b"findme\0" + b"\x01" * 100)
    (repo / "huge.txt").write_text("findme " * 150_000)  # 1.05 MB
    (repo / "link.txt").symlink_to("small.txt")
    update = index.update(repo / ".git", commit(repo))
    assert (update.indexed, update.skipped) == (1, 2)
    assert paths(index, "findme") == ["small.txt"]
    (repo / "small.txt").write_text("changed\n")
    assert index.update(repo / ".git", commit(repo)).indexed == 1  # skipped ones stay skipped


def test_bad_commits_and_folders_are_named_errors(repo: Path, index: RepositoryIndex) -> None:
    with pytest.raises(GitReadFailed, match="not a commit name"):
        index.update(repo / ".git", "--output=/tmp/x")
    with pytest.raises(GitReadFailed):
        index.update(repo / ".git", "0" * 40)
    with pytest.raises(GitReadFailed):
        index.update(repo / "nowhere", "HEAD")
    assert index.commit is None


def test_the_commits_own_objects_are_read_never_replacements(
    repo: Path, index: RepositoryIndex
) -> None:
    # `git replace` would show other content for a blob; the index reads what the commit holds
    original = git(repo, "rev-parse", "HEAD:src/payments.py")
    fake = (
        subprocess.run(
            ["git", "-C", str(repo), "hash-object", "-w", "--stdin"],
            input=b"planted = 'replacement'\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    git(repo, "replace", original, fake)
    assert "planted" in git(repo, "show", "HEAD:src/payments.py")
    index.update(repo / ".git", "HEAD")
    assert paths(index, "planted") == []
    assert "src/payments.py" in paths(index, "settle_invoice")
