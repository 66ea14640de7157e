"""The gate's ESLint ignores configuration comments: an `eslint-disable` an engine adds hides
nothing, and the same edit is an integrity finding. One sandbox of the npm sample project
(`test_javascript_project.py`'s files and cached lock), real ESLint 9 in flat-config mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from codefactory.domain import FileChange
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.setup import install_dependencies
from codefactory.verify.diff import DiffedChange, with_base
from codefactory.verify.eslint import EslintCheck
from codefactory.verify.integrity import IntegrityCheck
from tests.conftest import make_repo
from tests.integration.test_javascript_project import CACHE, FILES, npm_lock

pytestmark = pytest.mark.usefixtures("bwrap_available")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BubblewrapWorkspace]:
    root = tmp_path_factory.mktemp("js-inline")
    make_repo(root / "repo", FILES | {"package-lock.json": npm_lock(FILES["package.json"])})
    cache = CACHE / "sandbox-cache"
    cache.mkdir(parents=True, exist_ok=True)
    sandbox = BubblewrapSandbox(root / "work", cache)
    provisioned = sandbox.provision(repo=root / "repo", commit="HEAD", run_id="js-inline")
    try:
        install_dependencies(provisioned)
        yield provisioned
    finally:
        provisioned.destroy()


def test_an_added_eslint_disable_hides_nothing_and_is_an_integrity_finding(
    workspace: BubblewrapWorkspace,
) -> None:
    disabled = (
        "/* eslint-disable */\nconst unused = 1;\n"
        "// eslint-disable-next-line no-unused-vars\nconst alsoUnused = 2;\n"
        '/* eslint no-unused-vars: "off" */\nconst third = 3;\n\nmodule.exports = {};\n'
    )
    workspace.write_file("src/extra.js", disabled.encode())
    change = with_base(workspace.changes(), {"src/extra.js": None})
    eslint = EslintCheck(timeout_s=120).run(workspace, change)
    integrity = IntegrityCheck().run(workspace, change)
    assert not eslint.passed, eslint.summary
    found = sorted((f.line, f.rule, f.blocking) for f in eslint.findings)
    assert found == [
        (2, "no-unused-vars", True),
        (4, "no-unused-vars", True),
        (6, "no-unused-vars", True),
    ]
    assert not integrity.passed
    markers = sorted((f.rule, f.line) for f in integrity.findings)
    assert markers == [
        ("suppression-added", 1),
        ("suppression-added", 3),
        ("suppression-added", 5),
    ]


def test_no_inline_config_leaves_a_clean_file_clean(workspace: BubblewrapWorkspace) -> None:
    """The option must not make ESLint fail on ordinary code (a false alarm is no check)."""
    content = b"const used = 1;\n\nmodule.exports = { used };\n"
    workspace.write_file("src/clean.js", content)
    change = DiffedChange(
        files=(FileChange(path="src/clean.js", content=content),), base={"src/clean.js": None}
    )
    result = EslintCheck(timeout_s=120).run(workspace, change)
    assert result.passed and result.findings == (), result.summary
