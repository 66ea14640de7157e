"""The docs folder connector on real folders: search ranking, fetch, clipping, and every
way a reference could leave its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.context.connectors.docs import (
    MAX_FILE_BYTES,
    DocsFolderConnector,
    docs_connector,
)
from codefactory.context.errors import ContextError, NotFound, OutOfScope, ResponseTooLarge
from codefactory.context.port import Scope
from codefactory.context.settings import ContextSettings, SourceSettings


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two docs folders and, beside them, a folder they must never reach."""
    docs, more, outside = tmp_path / "docs", tmp_path / "more", tmp_path / "outside"
    for folder in (docs / "runbooks", docs / ".git", more, outside):
        folder.mkdir(parents=True)
    (docs / "README.md").write_text("# Docs\n\nPayments overview.\n")
    (docs / "runbooks" / "payments.md").write_text(
        "# Payments runbook\n\nWhen a payment times out, retry after 30 s.\n"
    )
    (docs / "runbooks" / "gateway.markdown").write_text("Gateway TIMEOUT handling.\n")
    (docs / "notes.rst").write_text("Retry policy\n============\n\nretry payment on timeout\n")
    (docs / "code.py").write_text("# payments timeout retry in code, not docs\n")
    (docs / ".git" / "HEAD.md").write_text("payments timeout retry\n")
    (docs / ".hidden.md").write_text("payments timeout retry\n")
    (more / "faq.txt").write_text("Why do payments time out? See the runbook.\n")
    (outside / "secret.md").write_text("payments timeout retry: password hunter2\n")
    (docs / "escape.md").symlink_to(outside / "secret.md")
    (docs / "outside-dir").symlink_to(outside, target_is_directory=True)
    (docs / "inside.md").symlink_to(docs / "README.md")
    return docs, more, outside


def connector(
    folders: tuple[Path, Path, Path], max_item_chars: int = 10_000
) -> DocsFolderConnector:
    return DocsFolderConnector(folders[:2], "internal", max_item_chars)


def test_search_ranks_by_matching_words_then_path(folders: tuple[Path, Path, Path]) -> None:
    items = connector(folders).search("Payment TIMEOUT retry")

    assert [(item.id, item.title) for item in items] == [
        ("0/notes.rst", "notes.rst"),  # 3 words
        ("0/runbooks/payments.md", "Payments runbook"),  # 3 words
        ("0/README.md", "Docs"),  # 1 word ("payment" inside "Payments")
        ("0/inside.md", "Docs"),  # a symlink that stays inside its folder
        ("0/runbooks/gateway.markdown", "gateway.markdown"),  # 1 word, any case
        ("1/faq.txt", "faq.txt"),  # 1 word
    ]
    assert items[1].text == (folders[0] / "runbooks" / "payments.md").read_text()
    assert items[1].source == "docs" and items[1].data_class == "internal"
    assert items[1].uri == str((folders[0] / "runbooks" / "payments.md").resolve())
    assert not any("hunter2" in item.text for item in items)


def test_search_honours_the_limit_and_refuses_an_empty_query(
    folders: tuple[Path, Path, Path],
) -> None:
    assert [item.id for item in connector(folders).search("retry", limit=1)] == ["0/notes.rst"]
    with pytest.raises(ContextError, match="empty"):
        connector(folders).search("   ")


def test_fetch_answers_one_file_clipped_and_marked(folders: tuple[Path, Path, Path]) -> None:
    item = connector(folders, max_item_chars=20).fetch("0/runbooks/payments.md")

    assert item.id == "0/runbooks/payments.md" and item.citation == "docs:0/runbooks/payments.md"
    assert item.truncated
    assert item.text.startswith("# Payments runbook\n\n")
    assert "[truncated:" in item.text
    assert connector(folders).fetch("1/faq.txt").text.startswith("Why do payments")


@pytest.mark.parametrize(
    "ref",
    [
        "0/../outside/secret.md",
        "0/runbooks/../../outside/secret.md",
        "0/runbooks/../README.md",  # stays inside, but `..` is never accepted
        "0//etc/passwd",
        "/etc/passwd",
        "0/\\etc\\passwd.md",
        "0/escape.md",  # a symlink resolving outside the folder
        "0/outside-dir/secret.md",  # through a symlinked directory
        "2/faq.txt",  # no third folder
        "-1/faq.txt",
        "faq.txt",
        "0/code.py",  # not a documentation file
        "0/runbooks/payments.md\x00.txt",
    ],
)
def test_a_ref_leaving_its_folder_is_out_of_scope(
    folders: tuple[Path, Path, Path], ref: str
) -> None:
    with pytest.raises(OutOfScope) as refused:
        connector(folders).fetch(ref)
    assert "hunter2" not in str(refused.value)


def test_a_missing_file_is_not_found(folders: tuple[Path, Path, Path]) -> None:
    with pytest.raises(NotFound):
        connector(folders).fetch("0/runbooks/missing.md")
    with pytest.raises(NotFound):
        connector(folders).fetch("0/runbooks.md")


def test_a_file_over_two_megabytes_is_refused(folders: tuple[Path, Path, Path]) -> None:
    big = folders[0] / "big.md"
    big.write_bytes(b"timeout " * (MAX_FILE_BYTES // 8 + 1))

    with pytest.raises(ResponseTooLarge) as refused:
        connector(folders).fetch("0/big.md")

    assert refused.value.kind == "too-large" and refused.value.connector == "docs"
    assert "0/big.md" not in [item.id for item in connector(folders).search("timeout")]


def test_the_scope_names_the_resolved_folders(folders: tuple[Path, Path, Path]) -> None:
    assert connector(folders).scope == Scope(
        kind="folder", values=(str(folders[0].resolve()), str(folders[1].resolve()))
    )


def test_the_factory_reads_the_folders_and_class_from_settings(
    folders: tuple[Path, Path, Path],
) -> None:
    context = ContextSettings(
        docs_folders=[folders[1]], docs=SourceSettings(data_class="public"), max_item_chars=9
    )

    built = docs_connector(Settings(context=context))

    assert built is not None
    assert (built.name, built.data_class) == ("docs", "public")
    assert built.fetch("0/faq.txt").truncated
    assert docs_connector(Settings()) is None
