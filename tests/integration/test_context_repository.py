"""The repository connector on a real bubblewrap workspace over a real git repository:
ripgrep and universal-ctags run inside the sandbox, never over the tree on the host."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.context.connectors.repo_index import RepositoryIndex
from codefactory.context.connectors.repository import (
    BinaryFile,
    InvalidInput,
    RepositoryConnector,
)
from codefactory.context.errors import NotFound, OutOfScope
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from tests.conftest import git, make_repo

PAYMENTS = '''"""Payments."""


def settle_invoice(invoice):
    """Settle one invoice against the ledger."""
    return invoice.total


class Ledger:
    def post(self, entry):
        self.rows.append(entry)
'''
LONG = "".join(f"line {number}\n" for number in range(1, 101))
FILES = {
    "src/payments.py": PAYMENTS,
    "src/reports.py": "from payments import settle_invoice\n\nSETTLE_INVOICE_LIMIT = 3\n",
    "docs/long.txt": LONG,
    ".config/hidden.txt": "a hidden Settle_Invoice mention\n",
    "AGENTS.md": "Run the tests with `make test`.\n",
    ".github/copilot-instructions.md": "Prefer small functions.\n",
    ".cursor/rules/style.mdc": "---\ndescription: style\n---\nUse type hints.\n",
    "CONTRIBUTING.md": "Sign your commits. " * 50,
    # read by ctags from the current folder unless told otherwise: it would hide every tag
    ".ctags.d/evil.ctags": "--exclude=*\n",
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("context-repository") / "repo"
    make_repo(repo, FILES)
    (repo / "passwd").symlink_to("/etc/passwd")
    (repo / ".cursor/rules/leak.mdc").symlink_to("/etc/hostname")
    (repo / "alias.py").symlink_to("src/payments.py")
    (repo / "logo.bin").write_bytes(b"\x89PNG\0\0settle_invoice" + bytes(range(256)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "links and a binary")
    return repo


@pytest.fixture(scope="module")
def workspace(repo: Path) -> Iterator[BubblewrapWorkspace]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (make test installs it)")
    sandbox = BubblewrapSandbox(repo.parent / "work", repo.parent / "cache")
    ws = sandbox.provision(repo=repo, commit="HEAD", run_id="context1")
    yield ws
    ws.destroy()


@pytest.fixture(scope="module")
def repository(workspace: BubblewrapWorkspace) -> RepositoryConnector:
    return RepositoryConnector(
        workspace, repository="bank/payments", data_class="internal", index=None,
        max_item_chars=400,
    )  # fmt: skip


def test_search_finds_the_text_in_each_file_with_line_numbers(
    repository: RepositoryConnector,
) -> None:
    items = repository.search("SETTLE_invoice")
    by_id = {item.id: item for item in items}
    assert set(by_id) == {"src/payments.py:4", "src/reports.py:1", ".config/hidden.txt:1"}
    payments = by_id["src/payments.py:4"]
    assert payments.text == "4: def settle_invoice(invoice):"
    assert by_id["src/reports.py:1"].text.splitlines() == [
        "1: from payments import settle_invoice",
        "3: SETTLE_INVOICE_LIMIT = 3",
    ]
    assert items[0].id == "src/reports.py:1"  # most matching lines first
    assert (payments.source, payments.data_class, payments.citation) == (
        "repository",
        "internal",
        "repository:src/payments.py:4",
    )
    assert repository.scope.kind == "repository" and repository.scope.allows("bank/payments")
    assert len(repository.search("settle_invoice", limit=1)) == 1
    assert repository.search("no such words anywhere") == []
    assert repository.search("--files") == []  # text, never an option
    assert [i.id for i in repository.search("def settle_invoice(")] == ["src/payments.py:4"]
    with pytest.raises(InvalidInput):
        repository.search("   ")


def test_a_search_of_several_words_merges_the_index(
    workspace: BubblewrapWorkspace, repo: Path, tmp_path: Path
) -> None:
    index = RepositoryIndex(tmp_path / "index.sqlite")
    index.update(repo / ".git", workspace.base_commit)
    connector = RepositoryConnector(
        workspace, repository="bank/payments", data_class="internal", index=index,
        max_item_chars=400,
    )  # fmt: skip
    items = connector.search("ledger rows.append")  # not a phrase anywhere: the index has it
    assert [item.id for item in items] == ["src/payments.py:5"]  # the first "ledger"
    assert "rows.append" in items[0].text and workspace.base_commit[:12] in items[0].title
    assert connector.search("ledger rows.append", limit=0) == []


def test_fetch_reads_files_and_line_ranges(repository: RepositoryConnector) -> None:
    whole = repository.fetch("src/payments.py")
    assert (whole.id, whole.text, whole.truncated) == ("src/payments.py", PAYMENTS, False)
    lines = repository.fetch("docs/long.txt:10-12")
    assert (lines.id, lines.text) == ("docs/long.txt:10-12", "line 10\nline 11\nline 12")
    assert lines.title == "docs/long.txt lines 10-12 of 100"
    around = repository.fetch("docs/long.txt:50")
    assert around.id == "docs/long.txt:30-70" and around.text.startswith("line 30\n")
    assert repository.fetch("docs/long.txt:95-200").text.endswith("line 100")
    clipped = repository.fetch("CONTRIBUTING.md")
    assert clipped.truncated and "[truncated:" in clipped.text
    assert repository.fetch("alias.py").text == PAYMENTS  # a link inside the repository
    for bad in ("docs/long.txt:0-3", "docs/long.txt:5-2", "docs/long.txt:500-501"):
        with pytest.raises(InvalidInput):
            repository.fetch(bad)


@pytest.mark.parametrize(
    "ref", ["../etc/passwd", "/etc/passwd", "src/../../etc/passwd", "a\0b", ".git/config"]
)
def test_fetch_refuses_paths_outside_the_repository(
    repository: RepositoryConnector, ref: str
) -> None:
    with pytest.raises(OutOfScope):
        repository.fetch(ref)


def test_fetch_refuses_a_link_leading_out_of_the_workspace(
    repository: RepositoryConnector,
) -> None:
    with pytest.raises(OutOfScope, match="leads out of the repository") as refused:
        repository.fetch("passwd")
    assert "root:" not in str(refused.value)
    with pytest.raises(NotFound):
        repository.fetch("src/missing.py")
    with pytest.raises(NotFound):
        repository.fetch("src")  # a folder
    with pytest.raises(BinaryFile, match="logo.bin is a binary file"):
        repository.fetch("logo.bin")


def test_symbols_come_from_ctags_in_the_sandbox(repository: RepositoryConnector) -> None:
    items = repository.symbols("settle_invoice")
    assert [item.id for item in items] == ["src/payments.py:4", "src/reports.py:3"]  # exact first
    assert items[1].title == "variable SETTLE_INVOICE_LIMIT at src/reports.py:3"
    assert items[0].title == "function settle_invoice at src/payments.py:4"
    assert items[0].text.startswith("\n\ndef settle_invoice(invoice):\n")
    method = repository.symbols("post")
    assert [(i.id, i.title) for i in method] == [
        ("src/payments.py:10", "member Ledger.post at src/payments.py:10")
    ]
    assert [i.id for i in repository.symbols("ledger")] == ["src/payments.py:9"]
    assert repository.symbols("nothing_is_called_this") == []


def test_a_def_query_searches_the_definitions(repository: RepositoryConnector) -> None:
    items = repository.search("def:settle_invoice", limit=5)
    assert [item.title for item in items][0] == "function settle_invoice at src/payments.py:4"


def test_instruction_files_are_found_and_clipped(repository: RepositoryConnector) -> None:
    items = {item.id: item for item in repository.instructions()}
    assert list(items) == [
        "AGENTS.md",
        ".github/copilot-instructions.md",
        ".cursor/rules/style.mdc",
        "CONTRIBUTING.md",
    ]  # the link to /etc/hostname is left out
    assert items["AGENTS.md"].text == "Run the tests with `make test`.\n"
    assert items["CONTRIBUTING.md"].truncated
    assert len(items["CONTRIBUTING.md"].text) < 500
