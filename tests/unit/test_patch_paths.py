"""The paths a patch touches, as the tool gate reads them: every header form, no guessing."""

from __future__ import annotations

import pytest

from codefactory.engines.patches import (
    PathNotAllowed,
    UnreadablePatch,
    normal_path,
    numstat_paths,
    patch_paths,
)

RENAME = """diff --git a/README.md b/.gitlab-ci.yml
similarity index 100%
rename from README.md
rename to .gitlab-ci.yml
"""

COPY = """diff --git a/src/a.py b/.github/workflows/ci.yml
similarity index 100%
copy from src/a.py
copy to .github/workflows/ci.yml
"""


def test_a_rename_names_both_paths_even_without_hunks() -> None:
    assert patch_paths(RENAME) == ["README.md", ".gitlab-ci.yml"]


def test_a_copy_names_its_target() -> None:
    assert ".github/workflows/ci.yml" in patch_paths(COPY)


def test_plain_unified_headers_and_dev_null() -> None:
    patch = "--- /dev/null\n+++ b/new.py\t2024-01-01\n--- a/src/x.py\n+++ b/src/x.py\n@@ -1 +1 @@\n"
    assert patch_paths(patch) == ["new.py", "src/x.py"]


@pytest.mark.parametrize(
    "patch",
    [
        'diff --git "a/x y" "b/x y"\n',
        '--- "a/sp ace"\n+++ "b/sp ace"\n',
        "diff --git a/one b/two b/three\n",
    ],
)
def test_quoted_or_ambiguous_names_are_refused(patch: str) -> None:
    with pytest.raises(UnreadablePatch):
        patch_paths(patch)


def test_numstat_output_with_a_rename() -> None:
    output = "1\t0\tsrc/x.py\x000\t0\t\x00README.md\x00.gitlab-ci.yml\x00"
    assert numstat_paths(output) == ["src/x.py", "README.md", ".gitlab-ci.yml"]


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("./.gitlab-ci.yml", ".gitlab-ci.yml"),
        (".github//workflows/ci.yml", ".github/workflows/ci.yml"),
        (" Jenkinsfile", "Jenkinsfile"),
        ("src/./a.py", "src/a.py"),
    ],
)
def test_a_path_has_one_normal_spelling(given: str, normal: str) -> None:
    assert normal_path(given) == normal


@pytest.mark.parametrize("path", ["", "/etc/passwd", "~/x", "a/../../b", "a\0b", "."])
def test_paths_outside_the_workspace_are_refused(path: str) -> None:
    with pytest.raises(PathNotAllowed):
        normal_path(path)
