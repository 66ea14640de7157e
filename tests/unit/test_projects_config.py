"""The repository config: the documented schema is read, and every key outside it (above all
one that would widen authority) is refused by name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codefactory.projects.config import (
    AUTHORITY_KEYS,
    RepositoryConfigInvalid,
    parse_config,
)
from codefactory.projects.detect import detect_project
from codefactory.projects.model import CustomCheck

FULL = b"""\
python = "3.12"

[setup]
commands = ["apt-get --version", "make deps"]
replace = true

[test]
command = "pytest -x tests/unit"
paths = ["tests/unit"]

[checks]
skip = ["lint"]

[[checks.add]]
name = "typing"
command = ["mypy", "src"]
"""


def test_the_whole_schema_is_read() -> None:
    config = parse_config(FULL)
    assert config.python == "3.12"
    assert config.setup == ("apt-get --version", "make deps") and config.replace_setup
    assert config.test_command == ("pytest", "-x", "tests/unit")
    assert config.test_paths == ("tests/unit",)
    assert config.skip_checks == frozenset({"lint"})
    assert config.add_checks == (CustomCheck(name="typing", command=("mypy", "src")),)
    assert config.source == ".codefactory/config.toml"


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        (b'[network]\nhosts = ["evil.example"]\n', "network", "would widen authority"),
        (b'[setup]\negress = ["evil.example"]\n', "setup.egress", "would widen authority"),
        (b"rounds = 50\n", "rounds", "would widen authority"),
        (b'paths = ["/"]\n', "paths", "would widen authority"),
        (b'[policy]\nallow = true\n', "policy", "would widen authority"),
        (b'engine = "x"\n', "engine", "would widen authority"),
        (b'[test]\ncomand = "pytest"\n', "test.comand", "is not a known key"),
        (b'[setup]\ncommands = "make"\n', "setup.commands", "has the wrong type"),
        (b'[test]\npaths = ["../elsewhere"]\n', "test.paths", "outside the repository"),
        (b'[checks]\nskip = ["secrets"]\n', "checks.skip", "security checks"),
        (b'[[checks.add]]\nname = "x"\n', "checks.add[0]", "needs both"),
        (b'python = "three"\n', "python", "neither a version"),
        (b"[setup\n", "", "is not valid TOML"),
    ],
)  # fmt: skip
def test_a_refused_key_is_named(text: bytes, key: str, says: str) -> None:
    with pytest.raises(RepositoryConfigInvalid, match=re.escape(says)) as caught:
        parse_config(text)
    assert caught.value.key == key
    if key:
        assert f"`{key}`" in str(caught.value)


def test_detection_reports_an_invalid_config_as_a_problem_and_goes_on() -> None:
    class Files:
        files = {".codefactory/config.toml": b"[sandbox]\negress = true\n", "a.py": b""}

        def paths(self) -> list[str]:
            return sorted(self.files)

        def read(self, path: str) -> bytes | None:
            return self.files.get(path)

    project = detect_project(Files())
    assert project.problems == (
        ".codefactory/config.toml: `sandbox` would widen authority: network hosts, paths, "
        "rounds, engines and limits come from the factory's policy, never from the repository",
    )
    assert project.python is not None and project.config.source == ""


def test_the_docs_document_every_key_and_name_the_refused_ones() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "repository-config.md").read_text()
    for key in ("python", "[setup]", "commands", "replace", "[test]", "command", "paths",
                "[checks]", "skip", "[[checks.add]]", "name"):  # fmt: skip
        assert key in docs, key
    assert "never widen" in docs
    parse_config(docs.split("```toml\n", 1)[1].split("```", 1)[0].encode())
    for key in ("network", "egress", "rounds", "policy", "engine"):
        assert key in AUTHORITY_KEYS and key in docs
