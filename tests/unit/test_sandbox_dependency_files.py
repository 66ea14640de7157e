"""Which files the setup phase depends on, and when an image may be shared between trees."""

from __future__ import annotations

import pytest

from codefactory.sandbox.setup import dependency_files, self_contained


@pytest.mark.parametrize(
    ("text", "contained"),
    [
        ("idna==3.7\n", True),
        ("idna==3.7 \\\n    --hash=sha256:abc\n", True),
        ('requests[socks]>=2; python_version < "3.12"\n', True),
        ("# comment\n\nflask~=3.0  # pinned\n--index-url https://mirror.bank/simple\n", True),
        ("-r base.txt\n", False),
        ("--requirement=base.txt\n", False),
        ("-c constraints.txt\nidna\n", False),
        ("./planter\n", False),
        ("-e .\n", False),
        ("file:../x\n", False),
        ("pkg @ https://host/pkg-1.0-py3-none-any.whl\n", False),
        ("--find-links ./wheels\nidna\n", False),
        ("planter-1.0-py3-none-any.whl\n", False),
        ("git+https://host/repo.git\n", False),
    ],
)
def test_only_index_packages_make_a_requirements_file_self_contained(
    text: str, contained: bool
) -> None:
    assert self_contained(text) is contained


def test_a_change_to_any_file_a_requirement_may_pull_in_reruns_setup() -> None:
    paths = [
        "requirements.txt",
        "requirements/dev.txt",
        "reqs/base.txt",
        "a/constraints-ci.txt",
        "requirements-dev.in",
        "src/setup.py",
        "pkg/pyproject.toml",
        "wheels/x-1.0-py3-none-any.whl",
        "docs/index.txt",
        "app.py",
    ]
    assert dependency_files(paths) == paths[:8]
